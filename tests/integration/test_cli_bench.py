"""``farm bench dispatch`` runs end to end and prints its JSON summary (numbers are not judged)."""

from __future__ import annotations

import json

import pytest

from tests.integration.cli_support import farm_env, run_farm

pytestmark = pytest.mark.integration


def test_the_dispatch_benchmark_prints_a_json_summary(tmp_path: object) -> None:
    result = run_farm("bench", "dispatch", "--sessions", "3", env=farm_env(), deadline_s=280)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["sessions"] == 3
    for series in ("request_to_claim", "api_request", "queued_to_assigned"):
        assert set(summary[series]) == {"median_ms", "p90_ms", "p99_ms", "max_ms"}
    assert summary["request_to_claim"]["median_ms"] >= summary["queued_to_assigned"]["median_ms"]
    assert summary["workers"] and summary["workers"][0]["models"] == ["essence"]


def test_an_unknown_benchmark_is_refused() -> None:
    result = run_farm("bench", "no_such_bench", env=farm_env())
    assert result.returncode == 2 and "no benchmark named" in result.stderr
