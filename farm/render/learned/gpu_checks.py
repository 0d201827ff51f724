"""Correctness checks of the learned graphs on a GPU, shared by ``tests/gpu`` and ``gpucheck``.

Each check builds the test-size modules (same code as the full size, a few channels), runs them on
CUDA and compares against a reference, returning a ``Check`` (name, passed, detail). They are
plain functions so the GPU check can run them on a bare box without pytest; ``tests/gpu`` asserts
each one. Tolerances are in 8-bit levels of the final frames (what a viewer sees).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from farm.render.learned.fullsize import TINY, build_modules
from farm.render.learned.throughput import cuda_graphed, frame_inputs, frame_step, motion_inputs, motion_step

SIZE = 256
NAMES = ("stitch_network", "warp_network", "decoder", "hubert", "lmdm")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str
    skipped: str | None = None


def _frames(device: str, dtype: torch.dtype, batch: int, *, mode: str = "eager") -> torch.Tensor:
    modules: dict[str, Any] = build_modules(TINY, device=device, names=NAMES)
    for name in ("stitch_network", "warp_network", "decoder"):
        modules[name].to(dtype)
    if mode == "compiled":
        modules = {k: torch.compile(m, dynamic=True) for k, m in modules.items()}
    inputs = frame_inputs(batch, SIZE, torch.device(device), dtype)
    fn = frame_step(modules, dtype)
    with torch.inference_mode():
        if mode == "cudagraph":
            fn = cuda_graphed(fn, inputs)
        return fn(inputs).cpu().int()


def _levels(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a - b).abs().max())


def gpu_matches_cpu() -> Check:
    """fp32 frames on CUDA equal the CPU's within 2 levels (TF32 convolutions allowed)."""
    diff = _levels(_frames("cuda", torch.float32, 2), _frames("cpu", torch.float32, 2))
    return Check("fp32 CUDA frames match CPU", diff <= 2, f"max difference {diff} levels")


def batch_is_per_session() -> Check:
    """A batch of 4 gives each session what it would get alone (no cross-talk), fp16, ≤ 2 levels."""
    together = _frames("cuda", torch.float16, 4)
    alone = []
    for i in range(4):
        modules = build_modules(TINY, device="cuda", names=NAMES)
        for name in ("stitch_network", "warp_network", "decoder"):
            modules[name].half()
        inputs = {
            k: v[i : i + 1] for k, v in frame_inputs(4, SIZE, torch.device("cuda"), torch.float16).items()
        }
        with torch.inference_mode():
            alone.append(frame_step(modules, torch.float16)(inputs).cpu().int())
    diff = _levels(together, torch.cat(alone))
    return Check("batched frames equal per-session frames", diff <= 2, f"max difference {diff} levels")


def fp16_close_to_fp32() -> Check:
    """fp16 frames stay within 8 levels of fp32 (grid sampling runs in fp32 in both)."""
    diff = _levels(_frames("cuda", torch.float16, 2), _frames("cuda", torch.float32, 2))
    return Check("fp16 frames close to fp32", diff <= 8, f"max difference {diff} levels")


def cuda_graph_replays_eager() -> Check:
    diff = _levels(_frames("cuda", torch.float16, 2, mode="cudagraph"), _frames("cuda", torch.float16, 2))
    return Check("CUDA-graph replay equals eager", diff <= 1, f"max difference {diff} levels")


def compiled_matches_eager() -> Check:
    if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        reason = "torch.compile (Triton) needs a C compiler on PATH; none here"
        return Check("torch.compile equals eager", False, reason, skipped=reason)
    diff = _levels(_frames("cuda", torch.float16, 2, mode="compiled"), _frames("cuda", torch.float16, 2))
    return Check("torch.compile equals eager", diff <= 2, f"max difference {diff} levels")


def motion_runs_batched() -> Check:
    """The motion step at batch 3 returns finite (3, 5, 265) motion on CUDA."""
    modules = build_modules(TINY, device="cuda", names=NAMES)
    with torch.inference_mode():
        out = motion_step(modules, 4)(motion_inputs(3, torch.device("cuda"), 4))
    ok = tuple(out.shape) == (3, 5, 265) and bool(torch.isfinite(out).all())
    return Check("motion step batched on CUDA", ok, f"shape {tuple(out.shape)}")


CHECKS: tuple[Callable[[], Check], ...] = (
    gpu_matches_cpu,
    batch_is_per_session,
    fp16_close_to_fp32,
    cuda_graph_replays_eager,
    compiled_matches_eager,
    motion_runs_batched,
)


def run_all() -> list[Check]:
    """Every check; an exception is a failed check with its message (never a crash of the run)."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as exc:
            results.append(Check(check.__name__, False, f"{type(exc).__name__}: {str(exc)[:300]}"))
    return results
