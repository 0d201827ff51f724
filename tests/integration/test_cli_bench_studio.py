"""``farm bench studio --smoke``: a private API with 50 agents and one cold Chromium load of /studio;
the bench completes and prints its JSON (the figures themselves belong to BENCHMARKS.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.cli_support import farm_env, run_farm

pytestmark = pytest.mark.integration


def test_the_studio_bench_runs_and_reports_paint_list_and_bundle_figures(tmp_path: Path) -> None:
    out = tmp_path / "studio.json"
    result = run_farm("bench", "studio", "--smoke", "--out", str(out), env=farm_env(), deadline_s=180)

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == summary
    assert summary["agents"] == 50 and summary["loads"] == 1
    for figure in ("api_list_ms", "first_paint_ms", "signed_in_list_ms", "next_page_ms"):
        assert summary[figure]["n"] >= 1 and summary[figure]["median"] > 0, figure
    assert 0 < summary["initial_bytes"]["js"] < 100_000  # pages and plots load on demand
    assert {"machine", "date"} <= summary.keys()
