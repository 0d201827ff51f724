"""``farm bench expression``: throughput and latency of the Expression model per backend and batch size.

For every backend available on this machine (``torch-cpu`` and ``onnxruntime`` everywhere,
``torch-cpu-compiled`` with a C++ compiler; ``torch-cuda``, ``torch-cuda-compiled`` and ``tensorrt``
where CUDA/TensorRT exist) it checks parity with the eager CPU model and times one
batched inference at batch sizes 1, 2, 4, … up to a cap (default 64 on CUDA, 16 on CPU), within a
time budget per backend, and reports frames/s and latency (median, p90). From those it derives the
number of concurrent 25 fps sessions the device sustains: the best ``b × floor(40 ms / latency(b))``
over the measured batch sizes (model only: no encoding, no per-session audio work). A second part
runs real ExpressionRenderers through the engine's batcher (``--pipeline-sessions``) and reports the
aggregate frames/s including audio features, motion and batching. ``--sheet PATH`` writes a PNG
contact sheet of a session speaking (sample portrait, synthetic speech, a smile and a head tilt).

Output: one JSON object on stdout (``--out PATH`` also writes it to a file). ``--smoke`` measures
``torch-cpu`` only, at 64² and batch 1-2. ``--model learned`` measures the learned model instead
(``farm/bench/expression_learned.py``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from farm.bench.common import finish, parse_args, speech_like
from farm.render.base import FPS, AvatarFrame

FRAME_BUDGET_S = 1.0 / FPS


def _make_backend(name: str, size: int, max_batch: int, work_dir: Path) -> Any:
    from farm.render.expression import backends
    from farm.render.expression.model import ExpressionConfig

    config = ExpressionConfig(size=size)
    if name == "torch-cpu":
        return backends.TorchBackend(config, "cpu")
    if name == "torch-cuda":
        return backends.TorchBackend(config, "cuda")
    if name == "torch-cpu-compiled":
        return backends.CompiledCpuBackend(config)
    if name == "torch-cuda-compiled":
        return backends.CompiledCudaBackend(config, max_batch)
    if name == "onnxruntime":
        path = work_dir / f"expression-{config.model_hash()}.onnx"
        if not path.exists():
            backends.export_onnx(config, path)
        return backends.OnnxRuntimeBackend(path, config)
    if name == "tensorrt":
        from farm.render.expression import tensorrt_backend

        plan = tensorrt_backend.find_engine(work_dir, config, max_batch)
        if plan is None:
            raise RuntimeError(
                f"no TensorRT plan in {work_dir}; run farm.render.expression.build_engine first"
            )
        return tensorrt_backend.TensorRTBackend(plan, config)
    raise ValueError(f"unknown backend {name!r}")


def _sync(backend: Any) -> None:
    import torch

    if backend.device.type == "cuda":
        torch.cuda.synchronize(backend.device)


def _time_batch(backend: Any, batch: int, size: int, min_runs: int, min_time_s: float) -> list[float]:
    """Wall seconds of each timed run (one warm-up run first), frames copied to host as uint8."""
    from farm.render.expression.backends import to_uint8_frames
    from farm.render.expression.model import ExpressionConfig, example_inputs

    inputs = [t.to(backend.device) for t in example_inputs(batch, ExpressionConfig(size=size))]
    to_uint8_frames(backend.run(*inputs), batch)
    _sync(backend)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - started < min_time_s:
        t0 = time.perf_counter()
        to_uint8_frames(backend.run(*inputs), batch)
        _sync(backend)
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return times


def _max_diff_vs_eager_cpu(backend: Any, size: int) -> float:
    """Largest |difference| from the eager CPU model on one batch of 2 (a parity check per backend)."""
    from farm.render.expression.backends import TorchBackend
    from farm.render.expression.model import ExpressionConfig, example_inputs

    config = ExpressionConfig(size=size)
    inputs = example_inputs(2, config)
    expected = TorchBackend(config, "cpu").run(*inputs)
    actual = backend.run(*(t.to(backend.device) for t in inputs)).float().cpu()
    return float((actual - expected).abs().max())


def bench_backend(
    name: str, size: int, batch_sizes: list[int], budget_s: float, work_dir: Path
) -> dict[str, Any]:
    """Latency and throughput of one backend over increasing batch sizes, within ``budget_s``."""
    started = time.perf_counter()
    try:
        backend = _make_backend(name, size, max(batch_sizes), work_dir)
        backend.warmup([b for b in batch_sizes if b <= 2])
    except Exception as exc:  # a backend that cannot load here is reported, not fatal
        return {"backend": name, "error": repr(exc)}
    setup_s = time.perf_counter() - started
    parity = _max_diff_vs_eager_cpu(backend, size)
    started = time.perf_counter()  # the budget covers measurements, not the export or compile
    rows: list[dict[str, Any]] = []
    for batch in batch_sizes:
        spent = time.perf_counter() - started
        if rows and spent + rows[-1]["latency_ms_median"] / 1000 * 4 * batch / rows[-1]["batch"] > budget_s:
            break  # the next size would not fit the budget
        times = _time_batch(backend, batch, size, min_runs=3, min_time_s=0.5)
        median = statistics.median(times)
        rows.append(
            {
                "batch": batch,
                "latency_ms_median": round(median * 1000, 2),
                "latency_ms_p90": round(sorted(times)[int(0.9 * (len(times) - 1))] * 1000, 2),
                "latency_ms_min": round(min(times) * 1000, 2),
                "frames_per_s": round(batch / median, 1),
                "runs": len(times),
            }
        )
    sessions = max(
        (r["batch"] * int(FRAME_BUDGET_S // (r["latency_ms_median"] / 1000)) for r in rows), default=0
    )
    return {
        "backend": name,
        "setup_s": round(setup_s, 2),
        "max_abs_diff_vs_torch_cpu": parity,
        "per_batch": rows,
        "sessions_at_25fps": sessions,
        "max_batch_measured": rows[-1]["batch"] if rows else 0,
    }


def bench_pipeline(size: int, sessions: int, seconds: float, backend: str | None) -> dict[str, Any]:
    """``sessions`` renderers speaking through one engine (shared batcher), as fast as they can."""
    from farm.render.expression import ExpressionEngine
    from farm.render.landmarks import sample_portrait

    engine = ExpressionEngine(size=size, max_batch=max(1, sessions), backend=backend)
    engine.prewarm()
    avatar = engine.prepare_image(sample_portrait())
    speech = speech_like(seconds)
    renderers = [engine.open_session(avatar, f"bench-{i}") for i in range(sessions)]
    counts = [0] * sessions

    def drive(i: int) -> None:
        renderer = renderers[i]
        renderer.push_audio(speech, 16_000)
        renderer.flush()
        while renderer.pending_frames():
            renderer.next_frame()
            counts[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=drive, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    stats, backend_name = engine.batcher.stats, engine.backend
    for renderer in renderers:
        renderer.close()
    engine.close()
    total = sum(counts)
    return {
        "backend": backend_name,
        "sessions": sessions,
        "frames": total,
        "wall_s": round(wall, 2),
        "frames_per_s": round(total / wall, 1),
        "per_session_fps": round(total / wall / sessions, 1),
        "realtime": total / wall / sessions >= FPS,
        "mean_batch": round(stats.mean_batch_size, 2),
    }


def write_sheet(
    path: Path, size: int = 256, seconds: float = 4.0, columns: int = 6, rows: int = 4
) -> dict[str, Any]:
    """A contact sheet of one Expression session speaking, with a smile and a head tilt triggered."""
    from PIL import Image, ImageDraw

    from farm.render.expression import ExpressionEngine
    from farm.render.landmarks import sample_portrait

    engine = ExpressionEngine(size=size, max_batch=1, backend="torch-cpu")
    avatar = engine.prepare_image(sample_portrait())
    renderer = engine.open_session(avatar, "contact-sheet")
    renderer.push_audio(speech_like(seconds, seed=3), 16_000)
    renderer.flush()
    frames: list[AvatarFrame] = []
    while renderer.pending_frames() or len(frames) < 10:
        if len(frames) == 32:
            renderer.trigger("smile")
        if len(frames) == 50:
            renderer.trigger("head_tilt")
        frames.append(renderer.next_frame())
    renderer.close()
    engine.close()
    picks = np.arange(20, 20 + 2 * columns * rows, 2).clip(max=len(frames) - 1)  # every other frame
    sheet = Image.new("RGB", (columns * size, rows * (size + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, idx in enumerate(picks):
        frame = frames[int(idx)]
        x, y = (n % columns) * size, (n // columns) * (size + 18)
        sheet.paste(Image.fromarray(frame.pixels), (x, y))
        label = f"#{frame.index} open {frame.mouth_open:.2f} {frame.gesture or ''}"
        draw.text((x + 4, y + size + 3), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return {"sheet": str(path), "frames": len(frames), "tiles": len(picks), "size": size}


def run(
    *,
    size: int = 512,
    backends: list[str] | None = None,
    max_batch: int | None = None,
    budget_s: float = 60.0,
    pipeline_sessions: list[int] | None = None,
    pipeline_seconds: float = 2.0,
    sheet: Path | None = None,
    work_dir: Path = Path("var/engines"),
) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able result."""
    import torch

    from farm.render.expression.backends import available_backends, batch_buckets, preferred_backend

    cuda = torch.cuda.is_available()
    cap = max_batch or (64 if cuda else 16)
    names = backends or available_backends()
    result: dict[str, Any] = {
        "benchmark": "expression",
        "size": size,
        "device": torch.cuda.get_device_name(0)
        if cuda
        else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "preferred_backend": preferred_backend(),
        "backends": [
            bench_backend(n, size, batch_buckets(cap), budget_s=budget_s, work_dir=work_dir) for n in names
        ],
    }
    if pipeline_sessions:
        result["pipeline"] = [bench_pipeline(size, n, pipeline_seconds, None) for n in pipeline_sessions]
    if sheet is not None:
        result["contact_sheet"] = write_sheet(sheet)
    return result


def _model(argv: list[str]) -> tuple[str, list[str]]:
    """The ``--model`` choice (analytic | learned) and the remaining arguments."""
    rest, model, i = [], "analytic", 0
    while i < len(argv):
        if argv[i] == "--model" and i + 1 < len(argv):
            model, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith("--model="):
            model = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    return model, rest


def main(argv: list[str] | None = None) -> int:
    model, argv = _model(list(argv or []))
    if model == "learned":  # expression-2: farm/bench/expression_learned.py
        from farm.bench import expression_learned

        return expression_learned.main(argv)
    if model != "analytic":
        raise SystemExit(f"farm bench expression: unknown --model {model!r} (analytic | learned)")
    parser = argparse.ArgumentParser(prog="farm bench expression", description=__doc__)
    parser.add_argument("--size", type=int, default=512, help="frame size (square)")
    parser.add_argument("--backend", action="append", help="backend(s) to measure (default: all available)")
    parser.add_argument("--max-batch", type=int, default=None, help="largest batch (default 64 CUDA, 16 CPU)")
    parser.add_argument("--budget-s", type=float, default=60.0, help="time budget per backend")
    parser.add_argument(
        "--pipeline-sessions", type=int, nargs="*", default=[1, 4], help="engine runs, by sessions"
    )
    parser.add_argument("--pipeline-seconds", type=float, default=2.0, help="speech per pipeline session")
    parser.add_argument("--sheet", type=Path, default=None, help="write a PNG contact sheet here")
    parser.add_argument(
        "--work-dir", type=Path, default=Path("var/engines"), help="ONNX / TensorRT plan cache"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    smoke = {
        "size": 64,
        "backend": ["torch-cpu"],
        "max_batch": 2,
        "budget_s": 2.0,
        "pipeline_sessions": [2],
        "pipeline_seconds": 0.5,
    }
    args = parse_args(parser, argv, smoke=smoke)
    result = run(
        size=args.size,
        backends=args.backend,
        max_batch=args.max_batch,
        budget_s=args.budget_s,
        pipeline_sessions=args.pipeline_sessions,
        pipeline_seconds=args.pipeline_seconds,
        sheet=args.sheet,
        work_dir=args.work_dir,
    )
    finish(result, args.out, smoke=args.smoke)
    return 0
