"""`farm bench lipsync --smoke`: the lip-sync bench runs end to end (stream and rendered figures for
both mouth models and both engines) so it cannot rot; its real figures live in BENCHMARKS.md."""

from __future__ import annotations

import json

import pytest

from farm.cli import main

pytestmark = pytest.mark.integration


def test_the_lipsync_bench_smoke_run_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "lipsync", "--smoke", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for model in ("visemes_stream", "visemes_mouth", "loudness"):
        figures = result["stream"][model]
        assert {"viseme_accuracy", "closure_recall", "rounding_recall", "onset_lag_ms"} <= figures.keys()
    assert result["ms_per_frame"]["viseme_model"]["cpu_ms"] > 0
    for engine in ("essence", "expression"):
        assert {"visemes", "loudness"} <= result["rendered"][engine].keys()
    assert result["machine"]["cpu"] and result["date"]
