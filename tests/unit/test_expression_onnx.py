"""The ONNX export (the TensorRT input) computes what the torch model computes, at any batch size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from farm.render.expression import build_engine
from farm.render.expression.backends import (
    INPUT_NAMES,
    ONNX_OPSET,
    OUTPUT_NAME,
    OnnxRuntimeBackend,
    TorchBackend,
)
from farm.render.expression.model import ExpressionConfig
from farm.render.expression.motion import N_CONTROLS, N_MOUTH
from farm.render.expression.prepare import PreparedAvatar, prepare_avatar
from farm.render.landmarks import sample_portrait

pytestmark = pytest.mark.unit

SIZE = 128
CONFIG = ExpressionConfig(size=SIZE)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exported once for the module through the offline build step (``--onnx-only``: no GPU needed)."""
    cache = tmp_path_factory.mktemp("engines")
    result = build_engine.run(cache, size=SIZE, onnx_only=True)
    assert "plan" not in result  # nothing TensorRT ran
    return Path(str(result["onnx"]))


@pytest.fixture(scope="module")
def avatar() -> PreparedAvatar:
    return prepare_avatar(sample_portrait(), SIZE)


def _realistic_batch(avatar: PreparedAvatar, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    """The real face (with jittered landmarks), mouth rows in range (press included) and motion."""
    rng = np.random.default_rng(seed)
    appearance = np.repeat(avatar.appearance[None], batch, axis=0)
    keypoints = avatar.keypoints[None] + rng.normal(0, 0.005, (batch, 68, 2))
    mouth = rng.uniform(0.0, 1.0, (batch, N_MOUTH))
    controls = rng.uniform(-0.15, 1.0, (batch, N_CONTROLS))
    return tuple(
        torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        for a in (appearance, keypoints, mouth, controls)
    )


def test_the_export_has_a_fixed_opset_and_a_dynamic_batch_axis(onnx_path: Path) -> None:
    model = onnx.load(str(onnx_path))
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets[""] == ONNX_OPSET
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == list(INPUT_NAMES)
    for tensor in inputs.values():
        assert tensor.type.tensor_type.shape.dim[0].dim_param  # symbolic, not a fixed size
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
    assert not list(onnx_path.parent.glob("*.data"))  # one self-contained file


@pytest.mark.parametrize("batch", [1, 8])
def test_onnxruntime_matches_torch_within_1e_3(onnx_path: Path, avatar: PreparedAvatar, batch: int) -> None:
    inputs = _realistic_batch(avatar, batch, seed=batch)
    expected = TorchBackend(CONFIG).run(*inputs).numpy()
    actual = OnnxRuntimeBackend(onnx_path, CONFIG).run(*inputs).numpy()
    assert actual.shape == (batch, 3, SIZE, SIZE)
    assert actual.min() >= 0.0 and actual.max() <= 1.0
    assert np.abs(actual - expected).max() <= 1e-3


def test_the_build_step_skips_an_export_that_is_already_there(onnx_path: Path) -> None:
    before = onnx_path.stat().st_mtime_ns
    result = build_engine.run(onnx_path.parent, size=SIZE, onnx_only=True)
    assert Path(str(result["onnx"])) == onnx_path
    assert "onnx_export_s" not in result
    assert onnx_path.stat().st_mtime_ns == before


def test_the_build_cli_prints_one_json_line(onnx_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_engine.main(["--cache-dir", str(onnx_path.parent), "--size", str(SIZE), "--onnx-only"]) == 0
    line = capsys.readouterr().out.strip()
    assert json.loads(line)["model_hash"] == CONFIG.model_hash()
