"""TensorRT backend: build (offline) and run a serialized engine of ExpressionNet.

The only module that imports ``tensorrt``, and only inside functions, so importing it anywhere is
safe; nothing here runs without an NVIDIA GPU and NVIDIA's TensorRT (it is not pip-installable on
CI machines: its PyPI packages are stubs that fetch wheels from NVIDIA's index). Written against
the TensorRT 10 Python API:

* ``build_plan``: ONNX → engine with FP16 (GridSample layers pinned to FP32, as Ditto does), one
  optimisation profile over the batch axis (min 1, opt, max), a persisted timing cache.
* ``TensorRTBackend``: deserialises a plan and runs it on torch's current CUDA stream with device
  buffers shared with torch (``set_tensor_address`` on ``tensor.data_ptr()``): inputs stacked by the
  engine stay on the GPU, the output is a torch tensor allocated per call.
* ``find_engine`` / ``cache_key``: the EngineCache key for this machine (TensorRT version and GPU
  compute capability read at run time).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from farm.render.expression.backends import INPUT_NAMES, OUTPUT_NAME
from farm.render.expression.engine_cache import EngineCache, EngineCacheKey, EngineProfile
from farm.render.expression.model import N_MOUTH, N_POINTS, ExpressionConfig, example_inputs
from farm.render.expression.motion import N_CONTROLS

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 8 << 30


def _trt() -> Any:
    import tensorrt

    return tensorrt


def trt_version() -> str:
    return str(_trt().__version__)


def compute_capability(device: int = 0) -> tuple[int, int]:
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def cache_key(config: ExpressionConfig, profile: EngineProfile) -> EngineCacheKey:
    """The cache key of ``config`` built with ``profile`` on this machine's TensorRT and GPU."""
    return EngineCacheKey(config.model_hash(), trt_version(), compute_capability(), profile)


def find_engine(cache_dir: Path, config: ExpressionConfig, max_batch: int) -> Path | None:
    """A prebuilt plan usable here for batches up to ``max_batch``, or None."""
    found = EngineCache(cache_dir).find_compatible(
        config.model_hash(), trt_version(), compute_capability(), size=config.size, min_max_batch=max_batch
    )
    return found[0] if found else None


def _input_shapes(config: ExpressionConfig, batch: int) -> dict[str, tuple[int, ...]]:
    size = config.size
    return {
        "appearance": (batch, 3, size, size),
        "keypoints": (batch, N_POINTS, 2),
        "mouth": (batch, N_MOUTH),
        "controls": (batch, N_CONTROLS),
    }


def build_plan(
    onnx_path: Path,
    plan_path: Path,
    timing_cache_path: Path,
    *,
    config: ExpressionConfig,
    profile: EngineProfile,
) -> None:
    """Parse the ONNX export and write a serialized engine for ``profile`` to ``plan_path``."""
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if profile.fp16:
        builder_config.set_flag(trt.BuilderFlag.FP16)
        builder_config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type == trt.LayerType.GRID_SAMPLE:  # sampling coordinates need fp32
                layer.precision = trt.float32
                layer.set_output_type(0, trt.float32)
    optimisation = builder.create_optimization_profile()
    lo, opt, hi = (_input_shapes(config, b) for b in (profile.min_batch, profile.optimal, profile.max_batch))
    for name in INPUT_NAMES:
        optimisation.set_shape(name, lo[name], opt[name], hi[name])
    builder_config.add_optimization_profile(optimisation)
    blob = timing_cache_path.read_bytes() if timing_cache_path.exists() else b""
    timing_cache = builder_config.create_timing_cache(blob)
    builder_config.set_timing_cache(timing_cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise RuntimeError("TensorRT engine build failed (see the TensorRT log above)")
    plan_path.write_bytes(bytes(serialized))
    timing_cache_path.write_bytes(bytes(builder_config.get_timing_cache().serialize()))


class TensorRTBackend:
    """Runs a prebuilt plan on torch's CUDA stream, sharing device buffers with torch."""

    name = "tensorrt"

    def __init__(self, plan_path: Path, config: ExpressionConfig, device: str = "cuda") -> None:
        trt = _trt()
        self.device = torch.device(device)
        self.config = config
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        if self._engine is None:
            raise RuntimeError(f"TensorRT could not deserialise {plan_path}")
        self._context = self._engine.create_execution_context()
        self.plan_path = plan_path

    def run(
        self, appearance: torch.Tensor, keypoints: torch.Tensor, mouth: torch.Tensor, controls: torch.Tensor
    ) -> torch.Tensor:
        batch = appearance.shape[0]
        size = self.config.size
        keep = []  # the contiguous fp32 inputs must outlive the enqueue
        for name, tensor in zip(INPUT_NAMES, (appearance, keypoints, mouth, controls), strict=True):
            ready = tensor.to(self.device, torch.float32).contiguous()
            keep.append(ready)
            self._context.set_input_shape(name, tuple(ready.shape))
            self._context.set_tensor_address(name, ready.data_ptr())
        out = torch.empty((batch, 3, size, size), device=self.device, dtype=torch.float32)
        self._context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT enqueue failed")
        return out  # consumers on the same stream (to_uint8_frames) are ordered after it

    def warmup(self, batch_sizes: Sequence[int]) -> None:
        for batch in batch_sizes:
            self.run(*(t.to(self.device) for t in example_inputs(batch, self.config)))
        torch.cuda.synchronize(self.device)
