"""``farm bench audio-memory`` renders the longest accepted clip per sample rate through the worker
path and the API probe in child processes, and reports each one's peak memory (small scale here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.integration.cli_support import farm_env, run_farm

pytestmark = pytest.mark.integration


def test_the_audio_memory_bench_renders_every_rate_exactly_and_reports_peak_memory(tmp_path: Path) -> None:
    out = tmp_path / "audio_memory.json"
    argv = ["bench", "audio-memory", "--seconds", "4", "--rates", "8000,44100,192000", "--out", str(out)]
    result = run_farm(*argv, env=farm_env(), deadline_s=240)

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == summary
    assert [row["rate_hz"] for row in summary["rates"]] == [8_000, 44_100, 192_000]
    for row in summary["rates"]:
        worker, probe = row["worker"], row["api_probe"]
        assert (worker["state"], worker["reason"]) == ("ENDED", "input closed")
        assert worker["frames"] == math.ceil(4 * 16_000 / 640)  # every frame of the clip, no more
        assert probe["duration_s"] == 4.0
        assert row["within_upload_limit"]
        for child in (worker, probe):
            assert 0 < child["baseline_rss_mb"] <= child["peak_rss_mb"] < 4096  # sanity, not a target
    assert summary["max_peak_rss_mb"] == max(
        row[k]["peak_rss_mb"] for row in summary["rates"] for k in ("worker", "api_probe")
    )
    assert {"machine", "date", "target_peak_rss_mb", "within_target"} <= summary.keys()
