"""``farm bench expression --model learned --json``: sessions per GPU of the learned model (expression-2).

On full-size modules with random weights (``farm.render.learned.fullsize``; the published
architectures and parameter counts), for each backend present:

* ``torch``: the frame step (stitch, warp, decoder, paste-back at 512², fp16) and the motion step
  (HuBERT + 10 diffusion steps, fp32) at batch 1/4/8/16/32, eager vs torch.compile vs CUDA graphs,
  VRAM per session, and the sessions one GPU sustains at 25 fps with ≤ 1 % late frames (derived
  from p99 step times, then checked by a paced run of the whole engine at that many sessions,
  which also gives the first-frame latency with audio arriving in real time);
* ``onnxruntime``: the same pipeline on an operator's ONNX set (``--weights DIR``);
* ``tensorrt``: reported as skipped with the reason where it cannot run.

Without a CUDA device it prints the skip reason as JSON and exits 0. ``--smoke`` runs the same code
on test-size modules on the CPU in seconds (the test suite runs it, so this bench cannot rot; its
numbers are CPU smoke figures, not capacity).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from farm.bench.common import finish, parse_args


def _ort_rows(weights: Path, batches: tuple[int, ...], size: int, steps: int) -> dict[str, Any]:
    """The engine's pipeline on ONNX Runtime over ``weights``: ms per frame batch and motion batch."""
    import numpy as np

    from farm.render.learned.avatar import synthetic
    from farm.render.learned.engine import LearnedExpressionEngine
    from farm.render.learned.motion import driving_keypoints
    from farm.render.learned.pipeline import FrameJob, MotionHistory, MotionJob

    engine = LearnedExpressionEngine(
        weights=weights, backend="onnxruntime", size=size, max_batch=max(batches), sampling_steps=steps
    )
    try:
        engine.prewarm()
        pipeline = engine.pipeline
        rows = []
        for batch in batches:
            avatars = [engine.upload(synthetic(i, size)) for i in range(batch)]
            histories = [
                MotionHistory(a.prepared.source.vector(), a.cond_extras, pipeline.silence_row, i)
                for i, a in enumerate(avatars)
            ]
            t0 = time.perf_counter()
            motion = pipeline.infer_motion([MotionJob(h, np.zeros(6480, np.float32)) for h in histories])
            t1 = time.perf_counter()
            jobs = [
                FrameJob(a, driving_keypoints(a.prepared.source, m[0], m[0])[0])
                for a, m in zip(avatars, motion, strict=True)
            ]
            pipeline.infer_frames(jobs)
            t2 = time.perf_counter()
            rows.append(
                {
                    "batch": batch,
                    "motion_ms": round((t1 - t0) * 1000, 1),
                    "frame_ms": round((t2 - t1) * 1000, 1),
                }
            )
        return {"backend": engine.backend, "per_batch": rows}
    finally:
        engine.close()


def run(*, smoke: bool, weights: Path | None, budget_s: float) -> dict[str, Any]:
    import torch

    from farm.render.learned import gpucheck, tensorrt, throughput
    from farm.render.learned.fullsize import FULL, parameter_report

    cuda = torch.cuda.is_available()
    result: dict[str, Any] = {
        "benchmark": "expression-learned",
        "mode": "smoke (CPU, test-size modules)" if smoke else "full",
    }
    if not cuda and not smoke:
        result["skipped"] = (
            "no CUDA device (torch.cuda.is_available() is False): sessions per GPU need a GPU; "
            "--smoke runs the CPU smoke"
        )
        return result
    device = "cuda" if cuda and not smoke else "cpu"
    result["device"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    result["parameters"] = parameter_report(FULL)
    size = 128 if smoke else 512
    config = throughput.ThroughputConfig(
        preset="tiny" if smoke else "full",
        device=device,
        batches=(1,) if smoke else (1, 4, 8, 16, 32),
        frame_size=size,
        sampling_steps=1 if smoke else 10,
        min_runs=1 if smoke else 5,
        min_time_s=0.0 if smoke else 1.0,
    )
    torch_result = throughput.measure(config, throughput.Budget(budget_s * 0.6))
    result["backends"] = {"torch": torch_result, "tensorrt": {"skipped": tensorrt.unavailable_reason()}}
    if weights is None and smoke:
        with tempfile.TemporaryDirectory(prefix="learned-smoke-") as tmp:
            tiny = _tiny_weights(Path(tmp))
            result["backends"]["onnxruntime"] = _ort_rows(tiny, config.batches, size, config.sampling_steps)
    elif weights is not None:
        result["backends"]["onnxruntime"] = _ort_rows(weights, config.batches, size, config.sampling_steps)
    else:
        result["backends"]["onnxruntime"] = {"skipped": "no --weights DIR (an ONNX set) given"}
    best = max(
        (m.get("capacity", {}).get("best", {}).get("sessions", 0) for m in torch_result["modes"].values()),
        default=0,
    )
    sessions = max(1, min(best or 1, 1 if smoke else 32))
    result["realtime"] = gpucheck.engine_realtime(
        config.preset, device, sessions, 0.5 if smoke else 8.0, size, render_first=not smoke
    )
    result["sessions_per_gpu"] = {
        mode: m.get("capacity", {}).get("best")
        for mode, m in torch_result["modes"].items()
        if "capacity" in m
    }
    return result


def _tiny_weights(directory: Path) -> Path:
    """Test-size graphs exported to ``directory`` (the smoke run's ONNX set)."""
    from farm.render.learned.export import export_set
    from farm.render.learned.fullsize import TINY, build_modules

    export_set(build_modules(TINY), directory)
    (directory / "LICENSE").write_text("random test weights generated by farm bench expression --smoke\n")
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench expression --model learned", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON (always on; accepted for clarity)")
    parser.add_argument("--weights", type=Path, default=None, help="an ONNX set for the onnxruntime backend")
    parser.add_argument("--budget-s", type=float, default=300.0, help="time budget of the torch measurements")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parse_args(parser, argv, smoke={"budget_s": 60.0})  # --smoke: test-size modules on the CPU
    finish(run(smoke=args.smoke, weights=args.weights, budget_s=args.budget_s), args.out, smoke=args.smoke)
    return 0
