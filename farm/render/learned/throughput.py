"""Throughput of the learned graphs on torch, by execution mode and batch size (the benchmark's core).

Measures, on in-project modules with random weights (``fullsize``), the two batched steps the engine
runs: the **frame step** (stitch → warp → decode → paste-back → uint8 frames on the host, fp16 where
the reference keeps fp16) once per 40 ms tick, and the **motion step** (HuBERT on a chunk's window,
then the diffusion sampler over an 80-frame window, fp32) once per 5-frame chunk. Each is timed per
batch size in up to three modes: ``eager``; ``compiled`` (``torch.compile`` per module, dynamic batch
axis, so one compilation serves every batch size); ``cudagraph`` (the eager step captured once per
batch size with ``torch.cuda.CUDAGraph`` and replayed). From the p99 timings it derives how many
25 fps sessions one device sustains with at most 1 % late frames (``capacity``): a batch of b
sessions fits when its frame step's p99 fits a 40 ms tick and five frame steps plus one motion step
fit the 200 ms a chunk lasts. Imports only torch, numpy and the package's own modules, so the GPU
check runs it on a bare box.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from farm.render.learned.diffusion import sample, time_pairs
from farm.render.learned.fullsize import PRESETS, build_modules
from farm.render.learned.signatures import (
    AUDIO_WINDOW_SAMPLES,
    COND_DIM,
    FEATURE_SHAPE,
    HUBERT_DIM,
    MOTION_DIM,
    NUM_KP,
    RENDER_SIZE,
    SEQ_FRAMES,
)

TICK_MS = 40.0
CHUNK_MS = 200.0
MODES = ("eager", "compiled", "cudagraph")
Inputs = dict[str, torch.Tensor]


@dataclass(slots=True)
class Budget:
    """A wall-clock allowance shared by every measurement of one run."""

    seconds: float
    started: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.started)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (the bench toolkit's definition, repeated here to stay import-light)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ the two steps
def frame_inputs(batch: int, size: int, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    return {
        "kp_source": (torch.randn(batch, NUM_KP, 3, generator=g) * 0.1).to(device),
        "kp_driving": (torch.randn(batch, NUM_KP, 3, generator=g) * 0.1).to(device),
        "feature": torch.randn(batch, *FEATURE_SHAPE, generator=g).to(device, dtype),
        "grid": (torch.rand(batch, size, size, 2, generator=g) * 2 - 1).to(device),
        "mask": torch.rand(batch, size, size, generator=g).to(device),
        "background": torch.randint(0, 255, (batch, size, size, 3), generator=g, dtype=torch.uint8).to(
            device
        ),
    }


def frame_step(modules: dict[str, Any], dtype: torch.dtype) -> Callable[[Inputs], torch.Tensor]:
    """The per-tick work of a batch, on the device: (B, S, S, 3) uint8 frames."""
    stitch, warp, decoder = modules["stitch_network"], modules["warp_network"], modules["decoder"]

    def step(x: Inputs) -> torch.Tensor:
        kp_s, kp_d = x["kp_source"].to(dtype), x["kp_driving"].to(dtype)
        render = decoder(warp(x["feature"], kp_s, stitch(kp_s, kp_d))).float()
        sampled = F.grid_sample(render, x["grid"], mode="bilinear", padding_mode="zeros", align_corners=False)
        mask = x["mask"].unsqueeze(1)
        out = mask * sampled * 255.0 + (1 - mask) * x["background"].permute(0, 3, 1, 2).float()
        return (out + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    return step


def motion_inputs(batch: int, device: torch.device, steps: int, seed: int = 0) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    x: Inputs = {
        "windows": (torch.randn(batch, AUDIO_WINDOW_SAMPLES, generator=g) * 0.1).to(device),
        "cond": torch.randn(batch, SEQ_FRAMES, COND_DIM, generator=g).to(device),
        "cond_frame": torch.randn(batch, MOTION_DIM, generator=g).to(device),
        "x": torch.randn(batch, SEQ_FRAMES, MOTION_DIM, generator=g).to(device),
    }
    for i in range(steps - 1):
        x[f"noise{i}"] = torch.randn(batch, SEQ_FRAMES, MOTION_DIM, generator=g).to(device)
    return x


def motion_step(modules: dict[str, Any], steps: int) -> Callable[[Inputs], torch.Tensor]:
    """The per-chunk work of a batch: HuBERT on the windows, then ``steps`` denoising calls."""
    hubert, lmdm = modules["hubert"], modules["lmdm"]

    def step(x: Inputs) -> torch.Tensor:
        batch = x["x"].shape[0]
        feats = hubert(x["windows"])[:, 6:16].reshape(batch, 5, 2, HUBERT_DIM).mean(2)
        rows = torch.cat([feats, x["cond"][:, -5:, HUBERT_DIM:]], dim=-1)
        cond = torch.cat([x["cond"][:, 5:], rows], dim=1)
        times = {
            t: torch.full((batch,), t, dtype=torch.long, device=cond.device) for t, _ in time_pairs(steps)
        }

        def denoise(x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
            pred_noise, x_start = lmdm(x_t, x["cond_frame"], cond, times[t])
            return pred_noise, x_start

        noises = [x[f"noise{i}"] for i in range(steps - 1)]
        return sample(denoise, x["x"], noises, steps)[:, -5:]

    return step


# ------------------------------------------------------------------ timing
def cuda_graphed(fn: Callable[[Inputs], torch.Tensor], inputs: Inputs) -> Callable[[Inputs], torch.Tensor]:
    """``fn`` captured once on static copies of ``inputs``; calls copy new inputs in and replay."""
    static = {k: v.clone() for k, v in inputs.items()}
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # warm-up on a side stream, as the CUDA graphs docs ask
            fn(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(static)

    def replay(x: Inputs) -> torch.Tensor:
        for k, v in x.items():
            if v.data_ptr() != static[k].data_ptr():
                static[k].copy_(v)
        graph.replay()
        return out

    return replay


def time_step(
    fn: Callable[[Inputs], torch.Tensor],
    inputs: Inputs,
    device: torch.device,
    *,
    min_runs: int,
    min_time_s: float,
) -> list[float]:
    """Milliseconds per call, result copied to the host (as the engine does), after one warm-up."""
    fn(inputs).cpu()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - started < min_time_s and len(times) < 200):
        t0 = time.perf_counter()
        fn(inputs).cpu()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _row(batch: int, times: list[float], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "batch": batch,
        "runs": len(times),
        "median_ms": round(float(np.median(times)), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "per_item_ms": round(float(np.median(times)) / batch, 2),
        **extra,
    }


def capacity(frame_rows: list[dict[str, Any]], motion_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sessions at 25 fps with ≤ 1 % late frames, from p99 step times per batch size."""
    motion = {r["batch"]: r for r in motion_rows if "p99_ms" in r}
    best: dict[str, Any] = {"sessions": 0, "batch": None}
    per_batch = []
    for row in frame_rows:
        if "p99_ms" not in row or row["batch"] not in motion:
            continue
        b, frame_p99, motion_p99 = row["batch"], row["p99_ms"], motion[row["batch"]]["p99_ms"]
        chunk_ms = 5 * frame_p99 + motion_p99
        fits = frame_p99 <= TICK_MS and chunk_ms <= CHUNK_MS
        per_batch.append({"batch": b, "chunk_ms": round(chunk_ms, 1), "fits_realtime": fits})
        if fits and b > best["sessions"]:
            best = {"sessions": b, "batch": b, "chunk_ms": round(chunk_ms, 1)}
    return {
        "best": best,
        "per_batch": per_batch,
        "rule": "frame p99 <= 40 ms and 5 x frame p99 + motion p99 <= 200 ms",
    }


# ------------------------------------------------------------------ a whole run
@dataclass(frozen=True, slots=True)
class ThroughputConfig:
    preset: str = "full"
    device: str = "cuda"
    batches: tuple[int, ...] = (1, 4, 8, 16, 32)
    modes: tuple[str, ...] = MODES
    frame_size: int = RENDER_SIZE
    sampling_steps: int = 10
    min_runs: int = 5
    min_time_s: float = 1.0


PER_SESSION_PERSISTENT_MB = (
    np.prod(FEATURE_SHAPE) * 2 + RENDER_SIZE * RENDER_SIZE * (2 * 4 + 4 + 3)
) / 2**20  # f_s in fp16 + the canvas (grid, mask, background) at 512²


def _allocated_mb(device: torch.device) -> float:
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def _peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def _mode_reason(mode: str, device: torch.device) -> str | None:
    if mode == "cudagraph" and device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if mode == "compiled" and device.type != "cuda":
        return "not measured on CPU (Inductor C++ compilation takes minutes on the CI machine)"
    return None


def _modules_for(mode: str, modules: dict[str, Any]) -> dict[str, Any]:
    if mode != "compiled":
        return modules
    return {name: torch.compile(m, dynamic=True) for name, m in modules.items()}


def _measure_point(
    kind: str,
    mode: str,
    mods: dict[str, Any],
    batch: int,
    *,
    config: ThroughputConfig,
    device: torch.device,
    weights_mb: float,
) -> dict[str, Any]:
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if kind == "frame":
        inputs, fn = frame_inputs(batch, config.frame_size, device, dtype), frame_step(mods, dtype)
    else:
        inputs, fn = (
            motion_inputs(batch, device, config.sampling_steps),
            motion_step(mods, config.sampling_steps),
        )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    with torch.inference_mode():
        if mode == "cudagraph":
            fn = cuda_graphed(fn, inputs)
        first_s = time.perf_counter() - started
        times = time_step(fn, inputs, device, min_runs=config.min_runs, min_time_s=config.min_time_s)
    extra: dict[str, Any] = {"setup_s": round(first_s, 2)}
    if device.type == "cuda":
        extra["peak_mb"] = round(_peak_mb(device), 1)
        extra["vram_per_session_mb"] = round((_peak_mb(device) - weights_mb) / batch, 1)
    return _row(batch, times, extra)


def measure(
    config: ThroughputConfig, budget: Budget, log: Callable[[dict[str, Any]], None] = lambda _: None
) -> dict[str, Any]:
    """Every (mode, step, batch) point that fits ``budget``; skipped points say why."""
    device = torch.device(config.device)
    names = ("stitch_network", "warp_network", "decoder", "hubert", "lmdm")
    modules = build_modules(PRESETS[config.preset], device=device, names=names)
    if device.type == "cuda":
        for name in ("stitch_network", "warp_network", "decoder"):  # fp16 where the reference keeps it
            modules[name].half()
    weights_mb = _allocated_mb(device)
    result: dict[str, Any] = {
        "preset": config.preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "weights_mb": round(weights_mb, 1),
        "per_session_persistent_mb": round(float(PER_SESSION_PERSISTENT_MB), 2),
        "sampling_steps": config.sampling_steps,
        "modes": {},
    }
    for mode in config.modes:
        reason = _mode_reason(mode, device)
        if reason is not None:
            result["modes"][mode] = {"skipped": reason}
            continue
        mods = _modules_for(mode, modules)
        rows: dict[str, list[dict[str, Any]]] = {"frame": [], "motion": []}
        for batch in config.batches:
            for kind in ("frame", "motion"):
                if budget.left() <= 0:
                    rows[kind].append({"batch": batch, "skipped": "time budget spent"})
                    continue
                try:
                    point = _measure_point(
                        kind, mode, mods, batch, config=config, device=device, weights_mb=weights_mb
                    )
                except Exception as exc:  # an OOM or a compiler failure is a finding, not a crash
                    point = {"batch": batch, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                rows[kind].append(point)
                log({"mode": mode, "step": kind, **point})
        result["modes"][mode] = {**rows, "capacity": capacity(rows["frame"], rows["motion"])}
    return result
