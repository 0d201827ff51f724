"""The learned engine on an operator's ONNX set: validated at prewarm, avatars prepared once, same
frames as the torch modules, cheap to import."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from farm.kernel.errors import ModelWeightsInvalid
from farm.kernel.settings import Settings
from farm.render.landmarks import sample_portrait
from farm.render.learned import LearnedExpressionEngine
from farm.render.learned.avatar import synthetic
from farm.render.learned.export import export_graph
from farm.render.learned.graphs import OrtGraphs
from farm.render.learned.motion import driving_keypoints
from farm.render.learned.pipeline import FrameJob
from farm.render.learned.signatures import GRAPHS_BY_NAME, example_feeds
from farm.render.learned.tensorrt import PlanKey, profile_for, unavailable_reason
from farm.render.learned.validate import check_weights_dir
from tests.support.learned_graphs import copy_weights, set_dim, tiny_weights

pytestmark = pytest.mark.unit

SIZE = 96


@pytest.fixture(scope="module")
def ort_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LearnedExpressionEngine]:
    cache = tmp_path_factory.mktemp("learned-avatars")
    engine = LearnedExpressionEngine(
        weights=tiny_weights(), size=SIZE, max_batch=2, cache_dir=cache, sampling_steps=2
    )
    engine.prewarm()
    yield engine
    engine.close()


def test_prewarm_refuses_a_broken_set_naming_the_graph(tmp_path: Path) -> None:
    weights = copy_weights(tmp_path / "weights")
    (weights / "lmdm_v0.4_hubert.onnx").unlink()
    engine = LearnedExpressionEngine(weights=weights, size=SIZE)
    with pytest.raises(ModelWeightsInvalid, match=r"lmdm: missing file \(expected lmdm_v0.4_hubert.onnx"):
        engine.prewarm()
    assert engine.backend == "unloaded"


def test_prewarm_without_weights_says_how_to_configure_them() -> None:
    with pytest.raises(ModelWeightsInvalid, match="set FARM_EXPRESSION_WEIGHTS"):
        LearnedExpressionEngine(weights=None).prewarm()


def test_the_engine_runs_the_operators_graphs_on_onnx_runtime(ort_engine: LearnedExpressionEngine) -> None:
    assert ort_engine.backend == "onnxruntime-cpu"
    assert any(reason.startswith("tensorrt: ") for reason in ort_engine.fallback_reasons)


def test_an_avatar_is_prepared_once_and_a_session_start_runs_no_extractor(
    ort_engine: LearnedExpressionEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    avatar = ort_engine.prepare_image(sample_portrait())
    assert avatar.prepared.feature.shape == (32, 16, 64, 64)
    assert ort_engine._cache is not None and ort_engine._cache.path(avatar.key).is_file()
    fresh = LearnedExpressionEngine(
        weights=tiny_weights(), size=SIZE, max_batch=2, cache_dir=ort_engine._cache.root, sampling_steps=2
    )
    try:
        fresh.prewarm()
        monkeypatch.setattr(fresh, "_extract", lambda crop: pytest.fail("extractors ran at session start"))
        again = fresh.prepare_image(sample_portrait())  # a new worker: from the disk cache
        assert np.array_equal(again.prepared.feature, avatar.prepared.feature)
        renderer = fresh.open_session(again, "cached")
        assert renderer.next_frame().pixels.shape == (SIZE, SIZE, 3)
        renderer.close()
    finally:
        fresh.close()


def test_a_frame_is_the_render_pasted_into_the_original_picture(ort_engine: LearnedExpressionEngine) -> None:
    avatar = ort_engine.prepare_image(sample_portrait())
    renderer = ort_engine.open_session(avatar, "paste")
    frame = renderer.next_frame().pixels
    canvas = avatar.prepared.canvas
    outside = canvas.mask == 0
    assert outside.any() and (~outside).any()
    assert np.array_equal(frame[outside], canvas.background[outside])
    renderer.close()


def test_onnx_runtime_and_the_torch_modules_render_the_same_frame(
    ort_engine: LearnedExpressionEngine,
) -> None:
    torch_engine = LearnedExpressionEngine(
        weights=None, backend="torch", preset="tiny", size=SIZE, max_batch=2, sampling_steps=2
    )
    try:
        torch_engine.prewarm()
        prepared = synthetic(3, SIZE)
        source = prepared.source
        motion = np.random.default_rng(0).normal(size=265).astype(np.float32) * 0.05
        x_d, _ = driving_keypoints(source, motion, np.zeros(265, np.float32))
        frames = [
            engine.pipeline.infer_frames([FrameJob(engine.upload(prepared), x_d)])[0]
            for engine in (ort_engine, torch_engine)
        ]
        assert np.abs(frames[0].astype(int) - frames[1].astype(int)).max() <= 1
    finally:
        torch_engine.close()


def test_describe_says_what_expression_2_is_and_whether_it_is_configured(tmp_path: Path) -> None:
    off = LearnedExpressionEngine.describe(Settings(data_dir=tmp_path))
    on = LearnedExpressionEngine.describe(Settings(data_dir=tmp_path, expression_weights=tiny_weights()))
    assert (off["configured"], off["backend"]) == (False, None)
    assert (on["configured"], on["backend"], on["weights_dir"]) == (True, "onnxruntime", str(tiny_weights()))
    assert on["graph_set"] == "ditto-v0.4-hubert" and on["fps"] == 25 and on["lookahead_ms"] == 85
    assert on["capacity_per_gpu"] is None  # not measured on a GPU yet


def test_from_settings_reads_the_expression_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        expression_weights=tmp_path / "w",
        expression_size=384,
        expression_max_batch=6,
        fps=25,
    )
    engine = LearnedExpressionEngine.from_settings(settings)
    assert (engine.weights, engine.size, engine.max_batch) == (tmp_path / "w", 384, 6)


def test_importing_the_package_loads_neither_torch_nor_onnxruntime() -> None:
    code = (
        "import sys; import farm.render.learned; "
        "heavy = [m for m in ('torch', 'onnxruntime', 'onnx', 'cv2') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


class _HalfSizeDecoder(torch.nn.Module):
    """A decoder that renders 256×256 while its file declares 512×512 (an export gone wrong)."""

    def __init__(self) -> None:
        super().__init__()
        self.to_rgb = torch.nn.Conv2d(256, 3, 1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.nn.functional.interpolate(self.to_rgb(feature), scale_factor=4.0))


def test_prewarm_runs_each_graph_once_and_names_an_output_that_lies_about_its_shape(tmp_path: Path) -> None:
    weights = copy_weights(tmp_path / "weights")
    export_graph("decoder", _HalfSizeDecoder(), weights / "decoder.onnx")
    assert check_weights_dir(weights).ok  # the file declares the right shape...
    with pytest.raises(
        ModelWeightsInvalid, match=r"decoder: output 'output' came out \[1, 3, 256, 256\] at batch 1"
    ):
        LearnedExpressionEngine(
            weights=weights, size=SIZE, sampling_steps=2
        ).prewarm()  # ...the graph does not


def test_tensorrt_plans_are_keyed_by_graph_gpu_arch_tensorrt_version_and_shape_profile() -> None:
    profile = profile_for(GRAPHS_BY_NAME["warp_network"], max_batch=32, opt_batch=16)
    assert [(name, lo[0], opt[0], hi[0]) for name, lo, opt, hi in profile.shapes] == [
        ("feature_3d", 1, 16, 32),
        ("kp_source", 1, 16, 32),
        ("kp_driving", 1, 16, 32),
    ]
    key = PlanKey("warp_network", "ab" * 32, "10.9.0", (9, 0), profile, "fp16")
    assert key.filename() == "warp_network-abababababab-trt10.9.0-sm90-b1.16.32-fp16.plan"
    other = PlanKey("warp_network", "ab" * 32, "10.9.0", (8, 9), profile, "fp16")
    assert other.filename() != key.filename() and other.digest() != key.digest()
    assert unavailable_reason() is not None  # no TensorRT on this machine: the engine says why it falls back


def test_a_graph_published_with_batch_1_runs_a_batch_one_item_at_a_time(tmp_path: Path) -> None:
    weights = copy_weights(tmp_path / "weights")
    for name in ("kp_source", "kp_driving"):
        set_dim(weights / "stitch_network.onnx", name, 0, 1)
    fixed = OrtGraphs({"stitch_network": weights / "stitch_network.onnx"})
    dynamic = OrtGraphs({"stitch_network": tiny_weights() / "stitch_network.onnx"})
    feeds = example_feeds(GRAPHS_BY_NAME["stitch_network"], batch=3)
    one_by_one = fixed.run("stitch_network", feeds)["out"]
    assert one_by_one.shape == (3, 21, 3)
    assert np.allclose(one_by_one, dynamic.run("stitch_network", feeds)["out"], atol=1e-6)
