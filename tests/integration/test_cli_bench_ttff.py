"""``farm bench ttff`` runs its three conditions end to end and prints the breakdown (not judged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.cli_support import farm_env, run_farm

pytestmark = pytest.mark.integration

STEPS = {"api_accept", "queue_wait", "claim", "model_ready", "avatar_ready", "sink_ready", "first_frame"}


def test_the_ttff_benchmark_reports_cold_warm_and_hot_with_their_breakdown(tmp_path: Path) -> None:
    out = tmp_path / "ttff.json"
    argv = ["bench", "ttff", "--sessions", "2", "--cold-sessions", "1", "--out", str(out)]
    result = run_farm(*argv, env=farm_env(), deadline_s=280)

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == summary
    assert {summary[c]["sessions"] for c in ("warm", "hot")} == {2} and summary["cold"]["sessions"] == 1
    for condition in ("cold", "warm", "hot"):
        assert set(summary[condition]["breakdown_p50_ms"]) == STEPS
        assert set(summary[condition]["ttff_ms"]) == {"p50", "p95", "max"}
    assert summary["hot"]["warm_routed"] == 2  # the hot worker holds both avatars: routed to it
    assert set(summary["ratios_p50"]) == {"cold_over_warm", "cold_over_hot"}
