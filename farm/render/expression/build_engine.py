"""Offline step: export ExpressionNet to ONNX and build its TensorRT engine into the engine cache.

Run at GPU image build time or by an init container into a shared volume (gpu_images/README.md):

    python -m farm.render.expression.build_engine --cache-dir /engines --size 512 --max-batch 64

Skips the build when the cache already holds a plan for this (model hash, TensorRT version, GPU
compute capability, profile). ``--onnx-only`` stops after the export (no GPU needed), for images
built on machines without one. Prints one JSON line describing what it did.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from farm.render.expression.engine_cache import EngineCache, EngineProfile


def onnx_path_for(cache_dir: Path, model_hash: str) -> Path:
    return cache_dir / f"expression-{model_hash}.onnx"


def run(
    cache_dir: Path,
    *,
    size: int = 512,
    max_batch: int = 64,
    opt_batch: int | None = None,
    fp16: bool = True,
    onnx_only: bool = False,
) -> dict[str, object]:
    """Export (if absent) and build (if absent); returns what was done, for the JSON line."""
    from farm.render.expression.backends import export_onnx
    from farm.render.expression.model import ExpressionConfig

    config = ExpressionConfig(size=size)
    model_hash = config.model_hash()
    onnx_path = onnx_path_for(cache_dir, model_hash)
    result: dict[str, object] = {"model_hash": model_hash, "onnx": str(onnx_path)}
    started = time.perf_counter()
    if not onnx_path.exists():
        export_onnx(config, onnx_path)
        result["onnx_export_s"] = round(time.perf_counter() - started, 2)
    if onnx_only:
        return result
    from farm.render.expression import tensorrt_backend

    profile = EngineProfile(max_batch=max_batch, size=size, opt_batch=opt_batch, fp16=fp16)
    key = tensorrt_backend.cache_key(config, profile)
    plan, built = EngineCache(cache_dir).ensure(
        key,
        lambda tmp, timing: tensorrt_backend.build_plan(
            onnx_path, tmp, timing, config=config, profile=profile
        ),
    )
    result.update(
        {
            "plan": str(plan),
            "built": built,
            "key": key.filename(),
            "total_s": round(time.perf_counter() - started, 2),
        }
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m farm.render.expression.build_engine", description=__doc__
    )
    parser.add_argument("--cache-dir", type=Path, required=True, help="engine cache directory (a volume)")
    parser.add_argument("--size", type=int, default=512, help="frame size (square), = FARM_EXPRESSION_SIZE")
    parser.add_argument("--max-batch", type=int, default=64, help="largest batch of the optimisation profile")
    parser.add_argument("--opt-batch", type=int, default=None, help="batch TensorRT tunes for (default: max)")
    parser.add_argument("--fp32", action="store_true", help="build without FP16")
    parser.add_argument("--onnx-only", action="store_true", help="export ONNX only (no GPU needed)")
    args = parser.parse_args(argv)
    result = run(
        args.cache_dir,
        size=args.size,
        max_batch=args.max_batch,
        opt_batch=args.opt_batch,
        fp16=not args.fp32,
        onnx_only=args.onnx_only,
    )
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
