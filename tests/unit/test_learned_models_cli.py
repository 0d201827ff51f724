"""`farm models check DIR` prints the validator's verdict; `farm models pull ditto` says when the hub
is out of reach; the full-size modules have the published sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.cli import main as farm_main
from farm.render.learned.commands import PULL_PATTERNS
from farm.render.learned.fullsize import FULL, TINY, build_modules, parameter_counts, parameter_report
from tests.support.learned_graphs import copy_weights, tiny_weights

pytestmark = pytest.mark.unit


def test_check_prints_ok_for_a_valid_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert farm_main(["models", "check", str(tiny_weights())]) == 0
    out = capsys.readouterr().out
    assert "[ok  ] warp_network: warp_network_ori.onnx" in out and out.rstrip().endswith("verdict: OK")


def test_check_fails_with_the_broken_graph_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = copy_weights(tmp_path / "w")
    (weights / "motion_extractor.onnx").unlink()
    assert farm_main(["models", "check", str(weights)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] motion_extractor: (missing)" in out
    assert "error: motion_extractor: missing file (expected motion_extractor.onnx" in out
    assert "verdict: INVALID (1 problems)" in out


def test_pull_says_clearly_when_the_hub_cannot_be_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # tests never touch the network
    assert farm_main(["models", "pull", "ditto", "--dest", str(tmp_path / "ditto")]) == 1
    err = capsys.readouterr().err
    assert "the HuggingFace hub is not reachable from this machine" in err
    assert f"farm models check {tmp_path / 'ditto' / 'ditto_onnx'}" in err


def test_pull_never_fetches_the_non_commercial_insightface_graphs() -> None:
    assert "ditto_onnx/hubert.onnx" in PULL_PATTERNS and "LICENSE" in PULL_PATTERNS
    assert not [p for p in PULL_PATTERNS if "insightface" in p or "landmark" in p]


def test_full_size_modules_have_the_published_parameter_counts() -> None:
    report = {row["graph"]: row for row in parameter_report(FULL)}
    exact = {
        "appearance_extractor": 836_224,
        "motion_extractor": 28_118_728,
        "warp_network": 45_529_829,
        "decoder": 55_365_388,
        "stitch_network": 45_249,
        "lmdm": 47_788_297,
    }
    assert {name: report[name]["params"] for name in exact} == exact  # the published architectures' counts
    assert all(row["relative_diff"] < 0.005 for row in report.values())  # within the published rounding


def test_test_size_modules_are_small() -> None:
    assert sum(parameter_counts(TINY).values()) < 300_000
    assert set(build_modules(TINY, names=("lmdm",))) == {"lmdm"}
