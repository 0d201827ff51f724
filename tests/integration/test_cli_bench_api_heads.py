"""``farm bench api-heads`` serves hostile request heads to the farm's protocol and to uvicorn's own,
in child processes, and reports what each answered (small scale here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.cli_support import farm_env, run_farm

pytestmark = pytest.mark.integration


def test_the_api_heads_bench_shows_the_farm_refusing_heads_that_uvicorn_keeps_reading(tmp_path: Path) -> None:
    out = tmp_path / "api_heads.json"
    argv = ["bench", "api-heads", "--connections", "2", "--header-mb", "2", "--wait-s", "1"]
    argv += ["--out", str(out)]
    result = run_farm(*argv, env=farm_env(), deadline_s=120)

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == summary
    farm, uvicorn = summary["results"]
    assert farm["protocol"] == "farm" and farm["answers"] == {"431": 2}
    assert uvicorn["protocol"] == "uvicorn-httptools" and uvicorn["answers"] == {"open": 2}
    assert {"machine", "date"} <= summary.keys()
