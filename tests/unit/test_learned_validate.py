"""The learned model's weights are checked against declared signatures, and a broken set is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from farm.kernel.errors import ModelWeightsInvalid, PrewarmFailed
from farm.render.learned.onnx_io import OnnxReadError, read_graph_io, session_io
from farm.render.learned.signatures import GRAPHS, GRAPHS_BY_NAME, concrete_shape, example_feeds
from farm.render.learned.validate import check_weights_dir, require_valid
from tests.support.learned_graphs import (
    add_custom_op,
    copy_weights,
    rename_input,
    set_dim,
    set_input_dtype,
    tiny_weights,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    return copy_weights(tmp_path / "weights")


def test_the_exported_test_set_is_a_valid_graph_set() -> None:
    report = check_weights_dir(tiny_weights())
    assert report.ok, report.text()
    assert {g.spec.name: g.batch for g in report.graphs} == {
        **{g.name: "dynamic" for g in GRAPHS if g.batched},
        "hubert": "none",
    }
    assert "verdict: OK" in report.text()


@pytest.mark.parametrize("graph", [g for g in GRAPHS if g.batched], ids=lambda g: g.name)
def test_every_test_graph_runs_at_batch_1_and_2_with_the_declared_output_shapes(graph: object) -> None:
    spec = GRAPHS_BY_NAME[graph.name]  # type: ignore[attr-defined]
    session = ort.InferenceSession(str(tiny_weights() / spec.files[0]), providers=["CPUExecutionProvider"])
    for batch in (1, 2):
        outputs = session.run(None, example_feeds(spec, batch))
        for declared, out in zip(spec.outputs, outputs, strict=True):
            expected = concrete_shape(declared, batch)
            assert out.shape in {expected, (batch, 21, 3)}, (declared.name, out.shape)


def test_the_header_reader_sees_what_onnxruntime_sees() -> None:
    for graph in GRAPHS:
        path = tiny_weights() / graph.files[0]
        fast = read_graph_io(path)
        loaded = session_io(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        assert [(t.name, t.dtype, t.shape) for t in fast.inputs] == [
            (t.name, t.dtype, t.shape) for t in loaded.inputs
        ]
        assert [(t.name, t.dtype) for t in fast.outputs] == [(t.name, t.dtype) for t in loaded.outputs]


def test_a_missing_graph_is_named_with_the_file_it_expected(weights: Path) -> None:
    (weights / "decoder.onnx").unlink()
    report = check_weights_dir(weights)
    assert not report.ok
    assert report.errors == [f"decoder: missing file (expected decoder.onnx in {weights})"]


def test_a_renamed_input_names_the_graph_the_input_and_the_expected_signature(weights: Path) -> None:
    rename_input(weights / "stitch_network.onnx", "kp_driving", "driving")
    (error, *more) = check_weights_dir(weights).errors
    assert error.startswith("stitch_network: input 'kp_driving' is missing")
    assert "kp_driving: float32[batch, 21, 3]" in error
    assert more == [
        "stitch_network: unexpected inputs ['driving'] (the farm feeds only ['kp_source', 'kp_driving'])"
    ]


def test_a_wrong_dtype_is_named(weights: Path) -> None:
    set_input_dtype(weights / "lmdm_v0.4_hubert.onnx", "time_cond", onnx.TensorProto.FLOAT)
    assert check_weights_dir(weights).errors == [
        "lmdm: input 'time_cond' is float32, expected int64 (time_cond: int64[batch])"
    ]


def test_a_wrong_fixed_dim_is_named(weights: Path) -> None:
    set_dim(weights / "decoder.onnx", "output", 2, 256, output=True)
    assert check_weights_dir(weights).errors == ["decoder: output 'output' has dim 2 is 256, expected 512"]


def test_a_batch_axis_fixed_above_one_is_refused_and_fixed_at_one_is_accepted(weights: Path) -> None:
    set_dim(weights / "warp_network_ori.onnx", "kp_source", 0, 4)
    assert check_weights_dir(weights).errors == [
        "warp_network: input 'kp_source' has batch axis (dim 0) is fixed at 4; "
        "expected a symbolic batch axis or 1"
    ]
    set_dim(weights / "warp_network_ori.onnx", "kp_source", 0, "batch")
    set_dim(weights / "appearance_extractor.onnx", "image", 0, 1)
    report = check_weights_dir(weights)
    assert report.ok
    (appearance,) = [g for g in report.graphs if g.spec.name == "appearance_extractor"]
    assert appearance.batch == "fixed-1"
    assert "one at a time" in appearance.notes[0]


def test_the_tensorrt_only_warp_graph_is_refused_with_the_alternative_named(weights: Path) -> None:
    (weights / "warp_network_ori.onnx").rename(weights / "warp_network.onnx")
    add_custom_op(weights / "warp_network.onnx", "ditto.trt", "GridSample3D")
    (error,) = check_weights_dir(weights).errors
    assert "warp_network: uses custom ops ['GridSample3D (domain ditto.trt)']" in error
    assert "provide warp_network_ori.onnx" in error


def test_a_set_without_a_licence_file_is_refused(weights: Path) -> None:
    (weights / "LICENSE").unlink()
    (error,) = check_weights_dir(weights).errors
    assert error.startswith("no licence file (LICENSE or LICENSE.md")
    assert "Ditto's weights state no licence upstream" in error


def test_every_graph_reports_its_licence() -> None:
    text = check_weights_dir(tiny_weights()).text()
    assert text.count("licence: MIT (LivePortrait") == 5
    assert "licence: NOT STATED upstream" in text
    assert "licence: Apache-2.0 base model (facebook/hubert-large-ls960-ft)" in text
    assert "licence file: LICENSE" in text


def test_a_file_that_is_not_onnx_is_named(weights: Path) -> None:
    (weights / "hubert.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (error,) = check_weights_dir(weights).errors
    assert error.startswith("hubert: hubert.onnx is not a readable ONNX model")
    with pytest.raises(OnnxReadError):
        read_graph_io(weights / "hubert.onnx")


def test_require_valid_raises_one_clear_503_naming_the_first_problem(weights: Path) -> None:
    (weights / "hubert.onnx").unlink()
    (weights / "LICENSE").unlink()
    with pytest.raises(ModelWeightsInvalid) as caught:
        require_valid(weights)
    error = caught.value
    assert isinstance(error, PrewarmFailed)
    assert (error.http_status, error.code) == (503, "MODEL_WEIGHTS_INVALID")
    assert error.message.startswith(f"{weights}: no licence file")
    assert error.message.endswith(f"(+1 more problems: run `farm models check {weights}`)")


def test_a_path_that_is_not_a_directory_is_named(tmp_path: Path) -> None:
    report = check_weights_dir(tmp_path / "nowhere")
    (error,) = report.errors
    assert (
        error
        == f"not a directory: {tmp_path / 'nowhere'} (FARM_EXPRESSION_WEIGHTS must name the folder "
        + ("holding the graphs)")
    )
