"""The learned Expression model on a GPU: graph checks, full-size steps, the engine on CUDA.

Run by ``make gpu-check`` (``python -m farm.render.learned.gpucheck``) with ``--noconftest``, so this
module needs only torch, numpy and the engine's own modules (the bare GPU box has nothing else).
Without CUDA every test skips, saying so.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm.render.learned import LearnedExpressionEngine
from farm.render.learned.avatar import synthetic
from farm.render.learned.fullsize import FULL, build_modules
from farm.render.learned.gpu_checks import CHECKS
from farm.render.learned.throughput import frame_inputs, frame_step, motion_inputs, motion_step

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"
    ),
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_graph_check(check: object) -> None:
    result = check()  # type: ignore[operator]
    if result.skipped:
        pytest.skip(result.skipped)
    assert result.passed, f"{result.name}: {result.detail}"


def test_the_full_size_steps_run_batched_in_their_reference_precisions() -> None:
    modules = build_modules(
        FULL, device="cuda", names=("stitch_network", "warp_network", "decoder", "hubert", "lmdm")
    )
    for name in ("stitch_network", "warp_network", "decoder"):
        modules[name].half()
    with torch.inference_mode():
        frames = frame_step(modules, torch.float16)(frame_inputs(4, 512, torch.device("cuda"), torch.float16))
        motion = motion_step(modules, 2)(motion_inputs(4, torch.device("cuda"), 2))
    assert frames.shape == (4, 512, 512, 3) and frames.dtype == torch.uint8
    assert motion.shape == (4, 5, 265) and bool(torch.isfinite(motion).all())


def test_the_engine_renders_speaking_sessions_on_cuda() -> None:
    engine = LearnedExpressionEngine(
        weights=None, backend="torch", preset="tiny", size=256, max_batch=4, sampling_steps=4
    )
    try:
        engine.prewarm()
        assert engine.backend == "torch-cuda-fp16"
        renderers = [engine.open_session(engine.upload(synthetic(i, 256)), f"gpu-{i}") for i in range(2)]
        speech = (np.random.default_rng(0).standard_normal(16_000) * 0.1).astype(np.float32)
        for r in renderers:
            r.push_audio(speech, 16_000)
            r.flush()
        frames = [r.next_frame() for _ in range(25) for r in renderers]
        assert all(f.pixels.shape == (256, 256, 3) for f in frames)
        assert sum(f.segment_end for f in frames) == 2
        for r in renderers:
            r.close()
    finally:
        engine.close()
