"""Expression on a GPU: compiled CUDA and TensorRT backends against the CPU reference.

Run on a GPU machine (``pytest -m gpu tests/gpu``). Without CUDA every test here skips, saying so;
the TensorRT tests also need NVIDIA's ``tensorrt`` package (the gpu_images container has it). The
TensorRT engine is built into a temporary cache by the same offline step the image uses, which
takes minutes on a cold timing cache.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from farm.render.expression import ExpressionEngine, build_engine
from farm.render.expression.backends import CompiledCudaBackend, TorchBackend
from farm.render.expression.model import ExpressionConfig, example_inputs
from farm.render.landmarks import sample_portrait

HAS_CUDA = torch.cuda.is_available()
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]
needs_tensorrt = pytest.mark.skipif(
    not HAS_TENSORRT, reason="needs NVIDIA TensorRT (not pip-installable; use the gpu_images container)"
)

SIZE = 256
CONFIG = ExpressionConfig(size=SIZE)


def _reference(batch: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    inputs = example_inputs(batch, CONFIG)
    return inputs, TorchBackend(CONFIG, "cpu").run(*inputs)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_compiled_cuda_matches_the_cpu_model(batch: int) -> None:
    inputs, expected = _reference(batch)
    backend = CompiledCudaBackend(CONFIG, max_batch=8)
    backend.warmup([batch])
    out = backend.run(*(t.cuda() for t in inputs))
    assert out.shape == expected.shape
    assert (out.cpu() - expected).abs().max().item() <= 2e-3


def test_the_engine_picks_a_cuda_backend_and_renders_a_session() -> None:
    engine = ExpressionEngine(size=SIZE, max_batch=4)
    try:
        engine.prewarm()
        assert engine.backend in {"tensorrt", "torch-cuda-compiled"}
        avatar = engine.prepare_image(sample_portrait())
        renderer = engine.open_session(avatar, "gpu")
        renderer.push_audio(np.random.default_rng(0).normal(0, 0.1, 16_000).astype(np.float32), 16_000)
        renderer.flush()
        frames = [renderer.next_frame() for _ in range(25)]
        assert frames[-1].segment_end
        assert frames[0].image.shape == (SIZE, SIZE, 3)
        renderer.close()
    finally:
        engine.close()


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not HAS_TENSORRT:
        pytest.skip("needs NVIDIA TensorRT")
    cache = tmp_path_factory.mktemp("engines")
    first = build_engine.run(cache, size=SIZE, max_batch=8)
    assert first["built"] is True
    yield cache


@needs_tensorrt
def test_the_engine_build_is_skipped_when_the_plan_exists(engine_cache: Path) -> None:
    again = build_engine.run(engine_cache, size=SIZE, max_batch=8)
    assert again["built"] is False


@needs_tensorrt
@pytest.mark.parametrize("batch", [1, 8])
def test_tensorrt_fp16_matches_the_cpu_model(engine_cache: Path, batch: int) -> None:
    from farm.render.expression.tensorrt_backend import TensorRTBackend, find_engine

    plan = find_engine(engine_cache, CONFIG, batch)
    assert plan is not None
    inputs, expected = _reference(batch)
    out = TensorRTBackend(plan, CONFIG).run(*(t.cuda() for t in inputs))
    torch.cuda.synchronize()
    # fp16 arithmetic (grid sampling kept in fp32): a looser bound than the fp32 ONNX parity.
    assert (out.cpu() - expected).abs().max().item() <= 2e-2


@needs_tensorrt
def test_the_engine_uses_a_prebuilt_tensorrt_plan(engine_cache: Path) -> None:
    engine = ExpressionEngine(size=SIZE, max_batch=8, engine_cache_dir=engine_cache)
    try:
        engine.prewarm()
        assert engine.backend == "tensorrt"
    finally:
        engine.close()
