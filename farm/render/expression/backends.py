"""Execution backends of ExpressionNet behind one small interface, and the choice made at prewarm.

* ``tensorrt`` — a serialized TensorRT engine built offline from the ONNX export
  (``tensorrt_backend.py``, the only module that imports ``tensorrt``). Chosen when ``tensorrt``
  imports, CUDA is present and the engine for this (model, TensorRT, GPU, profile) is in the cache.
* ``torch-cuda-compiled`` — ``torch.compile(mode="reduce-overhead")``: Inductor kernels plus CUDA
  graphs, one graph per batch bucket (batches are padded up to 1, 2, 4, …, max so only a handful of
  shapes are ever captured; all are captured during prewarm).
* ``torch-cpu`` — eager torch under ``inference_mode`` (development and CI).
* ``torch-cpu-compiled`` — ``torch.compile`` (Inductor C++ kernels) on CPU: several times faster
  than eager, after ~35 s of compilation; opt-in.
* ``onnxruntime`` — the exported graph on ONNX Runtime; used for export parity tests and the bench.

All return (B, 3, S, S) float frames in [0, 1] on their device; ``to_uint8_frames`` turns a batch
into per-session (S, S, 3) uint8 arrays with one device→host copy.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from farm.render.expression.model import ExpressionConfig, ExpressionNet, example_inputs

log = logging.getLogger(__name__)

ONNX_OPSET = 18
INPUT_NAMES = ("appearance", "keypoints", "mouth", "controls")
OUTPUT_NAME = "frame"


class Backend(Protocol):
    """One way of running ExpressionNet on a batch."""

    name: str
    device: torch.device

    def run(
        self, appearance: torch.Tensor, keypoints: torch.Tensor, mouth: torch.Tensor, controls: torch.Tensor
    ) -> torch.Tensor: ...

    def warmup(self, batch_sizes: Sequence[int]) -> None: ...


def batch_buckets(max_batch: int) -> list[int]:
    """1, 2, 4, … up to and including ``max_batch`` (the shapes compiled backends prepare)."""
    sizes, size = [], 1
    while size < max_batch:
        sizes.append(size)
        size *= 2
    sizes.append(max_batch)
    return sizes


def bucket_for(batch: int, buckets: Sequence[int]) -> int:
    for size in buckets:
        if size >= batch:
            return size
    raise ValueError(f"batch {batch} exceeds the largest bucket {buckets[-1]}")


def _pad(tensor: torch.Tensor, target: int) -> torch.Tensor:
    if tensor.shape[0] == target:
        return tensor
    filler = tensor[-1:].expand(target - tensor.shape[0], *tensor.shape[1:])
    return torch.cat([tensor, filler], dim=0)


def to_uint8_frames(frames: torch.Tensor, count: int) -> list[np.ndarray]:
    """First ``count`` frames of a (B, 3, S, S) [0, 1] batch as (S, S, 3) uint8 numpy arrays."""
    as_bytes = (frames[:count].float() * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)
    host = as_bytes.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [host[i] for i in range(count)]


class TorchBackend:
    """Eager torch under ``inference_mode`` on CPU or CUDA.

    On CPU the model is memory-bound (elementwise work and one grid_sample over full-resolution
    fields), and a large batch falls out of the caches: measured on the 2-core CI VM at 512², a
    batch of 8 cost ~19 ms per frame run whole and ~10-12 ms run two frames at a time. So on CPU a
    batch is run in chunks of ``cpu_chunk`` frames. channels_last and bf16 are not used: there are no
    convolutions for channels_last to help, and bf16 would break the 1e-3 export parity.
    """

    def __init__(self, config: ExpressionConfig, device: str = "cpu", *, cpu_chunk: int = 2) -> None:
        self.device = torch.device(device)
        self.name = "torch-cpu" if self.device.type == "cpu" else "torch-cuda"
        self.config = config
        self.model = ExpressionNet(config).to(self.device).eval()
        self._chunk = cpu_chunk if self.device.type == "cpu" else 0

    def run(
        self, appearance: torch.Tensor, keypoints: torch.Tensor, mouth: torch.Tensor, controls: torch.Tensor
    ) -> torch.Tensor:
        batch = appearance.shape[0]
        with torch.inference_mode():
            if not self._chunk or batch <= self._chunk:
                return self.model(appearance, keypoints, mouth, controls)
            parts = [
                self.model(*(t[i : i + self._chunk] for t in (appearance, keypoints, mouth, controls)))
                for i in range(0, batch, self._chunk)
            ]
            return torch.cat(parts)

    def warmup(self, batch_sizes: Sequence[int]) -> None:
        for batch in batch_sizes:
            self.run(*(t.to(self.device) for t in example_inputs(batch, self.config)))


class CompiledCpuBackend:
    """torch.compile (Inductor, C++/OpenMP kernels) on CPU, one graph for batch 1 and one dynamic.

    Fusing the elementwise chain cuts memory traffic: on the 2-core CI VM at 512² it measured
    ~2.5-3.5× faster per frame than eager (7 vs 20 ms at batch 1, 26 vs 90 ms at batch 8, same
    load), after ~35 s of compilation at the first two calls (needs a C++ compiler). Not the
    default on CPU because of that start-up cost; choose it with ``backend="torch-cpu-compiled"``.
    """

    name = "torch-cpu-compiled"

    def __init__(self, config: ExpressionConfig) -> None:
        self.device = torch.device("cpu")
        self.config = config
        model = ExpressionNet(config).eval()
        self._compiled = torch.compile(model, fullgraph=True, dynamic=True)

    def run(
        self, appearance: torch.Tensor, keypoints: torch.Tensor, mouth: torch.Tensor, controls: torch.Tensor
    ) -> torch.Tensor:
        with torch.inference_mode():
            return self._compiled(appearance, keypoints, mouth, controls)

    def warmup(self, batch_sizes: Sequence[int]) -> None:
        for batch in batch_sizes:
            self.run(*example_inputs(batch, self.config))


class CompiledCudaBackend:
    """torch.compile with CUDA graphs (``reduce-overhead``), batches padded to power-of-two buckets."""

    name = "torch-cuda-compiled"

    def __init__(self, config: ExpressionConfig, max_batch: int, device: str = "cuda") -> None:
        self.device = torch.device(device)
        self.config = config
        self.buckets = batch_buckets(max_batch)
        model = ExpressionNet(config).to(self.device).eval()
        self._compiled = torch.compile(model, mode="reduce-overhead", dynamic=False, fullgraph=True)

    def run(
        self, appearance: torch.Tensor, keypoints: torch.Tensor, mouth: torch.Tensor, controls: torch.Tensor
    ) -> torch.Tensor:
        batch = appearance.shape[0]
        target = bucket_for(batch, self.buckets)
        inputs = [_pad(t, target) for t in (appearance, keypoints, mouth, controls)]
        with torch.inference_mode():
            out = self._compiled(*inputs)
        return out[:batch].clone()  # CUDA-graph outputs are overwritten by the next replay

    def warmup(self, batch_sizes: Sequence[int]) -> None:
        for batch in sorted({bucket_for(b, self.buckets) for b in batch_sizes}):
            inputs = [t.to(self.device) for t in example_inputs(batch, self.config)]
            for _ in range(3):  # compile, record the graph, replay it
                self.run(*inputs)
        torch.cuda.synchronize(self.device)


def export_onnx(config: ExpressionConfig, path: Path, *, opset: int = ONNX_OPSET) -> Path:
    """Export ExpressionNet to one self-contained ONNX file with a dynamic batch axis."""
    model = ExpressionNet(config).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():
        # One Dim shared by the four inputs: the exporter notes it keeps a single name for them.
        warnings.filterwarnings("ignore", message=r".*axis name.*will not be used", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated", category=FutureWarning)
        _export(model, config, tmp, batch, opset)
    tmp.replace(path)
    return path


def _export(model: ExpressionNet, config: ExpressionConfig, tmp: Path, batch: object, opset: int) -> None:
    torch.onnx.export(
        model,
        example_inputs(2, config),
        str(tmp),
        input_names=list(INPUT_NAMES),
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamo=True,
        dynamic_shapes={name: {0: batch} for name in INPUT_NAMES},
        external_data=False,
        verbose=False,
    )


class OnnxRuntimeBackend:
    """The exported graph on ONNX Runtime (CPU, or CUDA when onnxruntime-gpu is installed)."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, config: ExpressionConfig, *, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
        providers = [p for p in wanted if p in ort.get_available_providers()]
        self._session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        self.device = torch.device("cpu")
        self.config = config

    def run(
        self, appearance: torch.Tensor, keypoints: torch.Tensor, mouth: torch.Tensor, controls: torch.Tensor
    ) -> torch.Tensor:
        tensors = (appearance, keypoints, mouth, controls)
        feeds = {name: t.detach().cpu().numpy() for name, t in zip(INPUT_NAMES, tensors, strict=True)}
        (out,) = self._session.run([OUTPUT_NAME], feeds)
        return torch.from_numpy(out)

    def warmup(self, batch_sizes: Sequence[int]) -> None:
        for batch in batch_sizes:
            self.run(*example_inputs(batch, self.config))


def cxx_compiler_available() -> bool:
    """Whether Inductor can build CPU kernels here (it needs a C++ compiler on PATH)."""
    return any(shutil.which(name) for name in ("g++", "c++", "clang++"))


def tensorrt_importable() -> bool:
    """Whether the ``tensorrt`` package is installed (checked without importing it)."""
    return importlib.util.find_spec("tensorrt") is not None


def preferred_backend() -> str:
    """The backend this machine should use: tensorrt > torch-cuda-compiled > torch-cpu."""
    if torch.cuda.is_available():
        return "tensorrt" if tensorrt_importable() else "torch-cuda-compiled"
    return "torch-cpu"


def available_backends() -> list[str]:
    """Every backend that can run here (the bench measures each)."""
    names = ["torch-cpu", "onnxruntime"]
    if cxx_compiler_available():
        names.append("torch-cpu-compiled")
    if torch.cuda.is_available():
        names += ["torch-cuda", "torch-cuda-compiled"]
        if tensorrt_importable():
            names.append("tensorrt")
    return names
