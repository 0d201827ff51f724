"""Execution backends of the learned graphs behind one small interface, best available first.

* ``tensorrt`` — engines built once per GPU model and cached (``tensorrt.py``: the cache key and
  the availability probe; the build itself needs NVIDIA's TensorRT and runs in the GPU image).
* ``onnxruntime`` — the operator's ONNX files: CUDA execution provider where onnxruntime-gpu is
  installed, else CPU. A graph whose batch axis is fixed at 1 (the published set) runs one item per
  call; a graph with a symbolic batch axis runs a whole batch at once.
* ``torch`` — the in-project modules (``fullsize.py``; random weights: throughput and tests): fp16
  where the reference keeps fp16 (on CUDA), fp32 otherwise and on CPU; optionally torch.compile.

A backend keeps arrays of its own kind (numpy for ONNX Runtime, device tensors for torch), so an
avatar's feature volume is uploaded once and stacked on the device per batch. Every graph call
takes and returns float32 at the interface (fp16 stays inside the module).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from farm.kernel.errors import ModelWeightsInvalid
from farm.render.learned.signatures import GRAPHS_BY_NAME, GraphSpec

log = logging.getLogger(__name__)


class GraphBackend(Protocol):
    name: str

    def run(self, graph: str, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """One call of ``graph`` on a batch; inputs and outputs by their declared names."""
        ...

    def speech_features(self, windows: Any) -> Any:
        """(B, 6480) audio windows → (B, 20, 1024) HuBERT features."""
        ...

    def asarray(self, host: np.ndarray, *, for_graph: str | None = None) -> Any:
        """A host array as this backend's array (on its device, in ``for_graph``'s precision)."""
        ...

    def stack(self, arrays: Sequence[Any]) -> Any: ...

    def to_host(self, array: Any) -> np.ndarray: ...

    def paste_back(self, renders: Any, grids: Any, masks: Any, backgrounds: Any) -> list[np.ndarray]:
        """(B, 3, 512, 512) renders into their canvases → B frames (S, S, 3) uint8."""
        ...

    def close(self) -> None: ...


# ------------------------------------------------------------------ ONNX Runtime
class OrtGraphs:
    """The operator's ONNX files on ONNX Runtime (CUDA EP when present, else CPU)."""

    def __init__(self, files: Mapping[str, Path], *, threads: int = 0) -> None:
        import onnxruntime as ort

        from farm.render.learned.onnx_io import session_io

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
        providers = [p for p in wanted if p in ort.get_available_providers()]
        self.name = "onnxruntime-cuda" if providers[0] == "CUDAExecutionProvider" else "onnxruntime-cpu"
        self._sessions: dict[str, Any] = {}
        self._batched: dict[str, bool] = {}
        for graph, path in files.items():
            # Licence of each file: signatures.GRAPHS_BY_NAME[graph].licence (checked by validate.py).
            try:
                session = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise ModelWeightsInvalid(
                    f"{graph}: onnxruntime cannot load {path.name}: {type(exc).__name__}: {str(exc)[:300]}"
                ) from exc
            shape = session_io(session).inputs[0].shape
            self._sessions[graph] = session
            self._batched[graph] = shape is not None and len(shape) > 0 and shape[0] != 1
        log.info("onnxruntime graphs loaded", extra={"backend": self.name, "graphs": len(files)})

    def run(self, graph: str, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        spec = GRAPHS_BY_NAME[graph]
        session = self._sessions[graph]
        names = [o.name for o in spec.outputs]
        arrays = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
        batch = next(iter(arrays.values())).shape[0]
        if self._batched[graph] or batch == 1:
            return dict(zip(names, session.run(names, arrays), strict=True))
        parts = [session.run(names, {k: v[i : i + 1] for k, v in arrays.items()}) for i in range(batch)]
        return {n: np.concatenate([p[j] for p in parts]) for j, n in enumerate(names)}

    def speech_features(self, windows: Any) -> np.ndarray:
        session = self._sessions["hubert"]
        rows = [
            session.run(["encoding_out"], {"input_values": w[None].astype(np.float32)})[0] for w in windows
        ]
        return np.stack(rows)

    def asarray(self, host: np.ndarray, *, for_graph: str | None = None) -> np.ndarray:
        return np.ascontiguousarray(host, dtype=np.float32) if host.dtype != np.int64 else host

    def stack(self, arrays: Sequence[Any]) -> np.ndarray:
        return np.stack(arrays)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def paste_back(self, renders: Any, grids: Any, masks: Any, backgrounds: Any) -> list[np.ndarray]:
        from farm.render.learned.geometry import Canvas, paste_back_host

        return [
            paste_back_host(renders[i], Canvas(backgrounds[i], grids[i], masks[i]))
            for i in range(renders.shape[0])
        ]

    def close(self) -> None:
        self._sessions.clear()


# ------------------------------------------------------------------ torch
class TorchGraphs:
    """In-project torch modules on one device; fp16 where the graph's reference precision is fp16."""

    def __init__(
        self,
        modules: Mapping[str, Any],
        device: str = "cpu",
        *,
        half: bool | None = None,
        compile_graphs: bool = False,
    ) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        use_half = self.device.type == "cuda" if half is None else half
        self._dtypes: dict[str, Any] = {}
        self._modules: dict[str, Any] = {}
        for graph, given in modules.items():
            dtype = torch.float16 if use_half and GRAPHS_BY_NAME[graph].precision == "fp16" else torch.float32
            module = given.to(self.device, dtype).eval()
            self._dtypes[graph] = dtype
            self._modules[graph] = torch.compile(module) if compile_graphs else module
        precision = "fp16" if use_half else "fp32"
        self.name = f"torch-{self.device.type}-{precision}" + ("-compiled" if compile_graphs else "")

    def _call(self, graph: str, *args: Any) -> Any:
        torch = self._torch
        dtype = self._dtypes[graph]
        ready = [a.to(self.device, dtype) if a.is_floating_point() else a.to(self.device) for a in args]
        with torch.inference_mode():
            return self._modules[graph](*ready)

    def run(self, graph: str, feeds: Mapping[str, Any]) -> dict[str, Any]:
        spec: GraphSpec = GRAPHS_BY_NAME[graph]
        out = self._call(graph, *(self._tensor(feeds[t.name]) for t in spec.inputs))
        outs = out if isinstance(out, tuple) else (out,)
        return {t.name: o.float() for t, o in zip(spec.outputs, outs, strict=True)}

    def speech_features(self, windows: Any) -> Any:
        return self._call("hubert", self._tensor(windows)).float()

    def _tensor(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return self._torch.from_numpy(np.ascontiguousarray(value)).to(self.device)
        return value

    def asarray(self, host: np.ndarray, *, for_graph: str | None = None) -> Any:
        tensor = self._torch.from_numpy(np.ascontiguousarray(host)).to(self.device)
        if for_graph is not None and tensor.is_floating_point():
            tensor = tensor.to(self._dtypes[for_graph])
        return tensor

    def stack(self, arrays: Sequence[Any]) -> Any:
        return self._torch.stack(list(arrays))

    def to_host(self, array: Any) -> np.ndarray:
        return array.detach().float().cpu().numpy()

    def paste_back(self, renders: Any, grids: Any, masks: Any, backgrounds: Any) -> list[np.ndarray]:
        """Sample each render into its canvas, blend with the background, quantise on the device."""
        torch = self._torch
        import torch.nn.functional as F

        with torch.inference_mode():
            sampled = F.grid_sample(
                renders.float(), grids.float(), mode="bilinear", padding_mode="zeros", align_corners=False
            )
            mask = masks.float().unsqueeze(1)
            background = backgrounds.permute(0, 3, 1, 2).float()
            out = mask * sampled * 255.0 + (1 - mask) * background
            frames = (out + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return [frames[i] for i in range(frames.shape[0])]

    def close(self) -> None:
        self._modules.clear()


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
