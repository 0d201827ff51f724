"""``python -m farm.render.learned.gpucheck``: the prepared GPU check, one JSON report (``make gpu-check``).

Runs on a bare GPU box (Python, torch, numpy; no TensorRT, no onnxruntime-gpu, no network, nothing
installed), so it imports only torch, numpy and the package's pure-Python modules (a test proves no
settings, Celery, LiveKit, SciPy, OpenCV or PyAV import sneaks in). In order, each within a share
of an overall time budget (default 420 s, so the whole check stays under 8 minutes):

1. the environment (GPU name, capability, memory, torch and CUDA versions);
2. the GPU tests: ``pytest -m gpu tests/gpu/test_learned_gpu.py`` where pytest and the tests are
   present, else the same checks (``gpu_checks``) run directly;
3. parameter counts of the full-size modules beside the published ones;
4. throughput of the full-size frame and motion steps, eager and CUDA graph, at batch 1/4/8/16/32,
   with VRAM per session and the derived sessions per GPU (``throughput``);
5. the whole engine on the wall clock: first-frame latency and late frames at the derived capacity;
6. the same throughput compiled (``torch.compile``), last because compiling the full-size graphs is
   the slowest and least certain step (Triton needs a C compiler), with whatever budget is left.

The report is rewritten after every phase (``"complete": false`` until the end), so a run cut short
still leaves the phases it finished.

``--tiny`` runs the same path with the test-size modules on whatever device exists (the CPU dry
run). Without CUDA and without ``--tiny`` the report says the check was skipped and why.
Writes ``--out`` (default ``$OUT/gpu-check.json`` when ``OUT`` is set, else ``out/gpu-check.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from farm.render.learned import gpu_checks, throughput
from farm.render.learned.fullsize import FULL, parameter_report

ROOT = Path(__file__).resolve().parents[3]
GPU_TESTS = ROOT / "tests" / "gpu" / "test_learned_gpu.py"


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host_cpu": platform.processor() or platform.machine(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
        )
    return env


def gpu_tests(timeout_s: float) -> dict[str, Any]:
    """The GPU tests through pytest when it and the tests are here, else the checks directly."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        pytest_missing = True
    else:
        pytest_missing = False
    if not pytest_missing and GPU_TESTS.is_file():
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "gpu",
            "--noconftest",
            "-p",
            "no:cacheprovider",
            str(GPU_TESTS),
        ]
        try:
            done = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            return {"runner": "pytest", "passed": False, "detail": f"timed out after {timeout_s:.0f} s"}
        return {
            "runner": "pytest",
            "passed": done.returncode == 0,
            "returncode": done.returncode,
            "tail": done.stdout[-3000:],
        }
    checks = gpu_checks.run_all()
    return {
        "runner": "gpu_checks (pytest or tests/ absent)",
        "passed": all(c.passed or c.skipped for c in checks),
        "checks": [
            {"name": c.name, "passed": c.passed, "detail": c.detail, "skipped": c.skipped} for c in checks
        ],
    }


def engine_realtime(
    preset: str, device: str, sessions: int, seconds: float, size: int, *, render_first: bool = True
) -> dict[str, Any]:
    """First-frame latency and a paced run of the whole engine (torch backend, random weights).

    ``render_first=False`` times the first frame without drawing it (the CPU smoke: motion path only)."""
    from farm.render.learned.avatar import synthetic
    from farm.render.learned.engine import LearnedExpressionEngine
    from farm.render.learned.realtime import first_frame_latency, paced_sessions

    engine = LearnedExpressionEngine(
        weights=None, backend="torch", preset=preset, device=device, size=size, max_batch=max(1, sessions)
    )
    try:
        started = time.perf_counter()
        engine.prewarm()
        result: dict[str, Any] = {
            "backend": engine.backend,
            "prewarm_s": round(time.perf_counter() - started, 1),
        }
        avatars = [engine.upload(synthetic(i, size)) for i in range(min(sessions, 4))]
        result["first_frame"] = first_frame_latency(engine, avatars[0], render=render_first)
        result["paced"] = paced_sessions(engine, avatars, sessions, seconds)
        return result
    finally:
        engine.close()


COMPILE_MIN_S = 120.0  # torch.compile of the full-size graphs is not started with less time left


def _config(tiny: bool, device: str, modes: tuple[str, ...]) -> throughput.ThroughputConfig:
    return throughput.ThroughputConfig(
        preset="tiny" if tiny else "full",
        device=device,
        batches=(1,) if tiny else (1, 4, 8, 16, 32),
        modes=modes,
        frame_size=128 if tiny else 512,
        sampling_steps=2 if tiny else 10,
        min_runs=1 if tiny else 5,
        min_time_s=0.0 if tiny else 1.0,
    )


def _best_sessions(measured: dict[str, Any]) -> int:
    modes = measured.get("modes", {}).values()
    return max((m.get("capacity", {}).get("best", {}).get("sessions", 0) for m in modes), default=0)


def run(
    *, tiny: bool, budget_s: float, save: Callable[[dict[str, Any]], None] = lambda _: None
) -> dict[str, Any]:
    """The whole check; ``save`` gets the report after every phase (a killed run still leaves one)."""
    cuda = torch.cuda.is_available()
    report: dict[str, Any] = {
        "check": "learned-expression gpu-check",
        "environment": environment(),
        "mode": "tiny" if tiny else "full",
        "complete": False,
    }
    if not cuda and not tiny:
        report["skipped"] = (
            "no CUDA device (torch.cuda.is_available() is False); use --tiny for the CPU dry run"
        )
        report["complete"] = True
        return report
    budget = throughput.Budget(budget_s)
    device = "cuda" if cuda else "cpu"
    report["gpu_tests"] = gpu_tests(timeout_s=budget_s * 0.25) if cuda else {"skipped": "no CUDA device"}
    report["parameters"] = parameter_report(FULL)
    save(report)

    def progress(row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)

    config = _config(tiny, device, ("eager", "cudagraph"))
    report["throughput"] = throughput.measure(config, throughput.Budget(budget.left() * 0.6), log=progress)
    save(report)
    sessions = max(1, min(_best_sessions(report["throughput"]) or 1, 2 if tiny else 32))
    report["realtime"] = engine_realtime(
        config.preset, device, sessions, 0.5 if tiny else 8.0, config.frame_size, render_first=not tiny
    )
    save(report)
    compiled = _config(tiny, device, ("compiled",))
    if budget.left() >= (0 if tiny else COMPILE_MIN_S):
        extra = throughput.measure(compiled, throughput.Budget(budget.left()), log=progress)
        report["throughput"]["modes"].update(extra["modes"])
    else:
        report["throughput"]["modes"]["compiled"] = {
            "skipped": f"less than {COMPILE_MIN_S:.0f} s of the budget left"
        }
    report["sessions_per_gpu"] = {
        mode: m.get("capacity", {}).get("best")
        for mode, m in report["throughput"]["modes"].items()
        if "capacity" in m
    }
    report["wall_s"] = round(budget_s - budget.left(), 1)
    report["complete"] = True
    return report


def default_out() -> Path:
    out_dir = os.environ.get("OUT")
    return Path(out_dir) / "gpu-check.json" if out_dir else Path("out") / "gpu-check.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m farm.render.learned.gpucheck", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="test-size modules on any device (CPU dry run)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="time budget of the whole check")
    parser.add_argument("--out", type=Path, default=None, help="report path (default: $OUT/gpu-check.json)")
    args = parser.parse_args(argv)
    out = args.out or default_out()
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(report: dict[str, Any]) -> None:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(out)

    report = run(tiny=args.tiny, budget_s=args.budget_s, save=save)
    save(report)
    print(json.dumps({"report": str(out), "skipped": report.get("skipped"), "wall_s": report.get("wall_s")}))
    tests = report.get("gpu_tests", {})
    return 1 if tests.get("passed") is False else 0


if __name__ == "__main__":
    sys.exit(main())
