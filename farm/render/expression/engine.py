"""ExpressionEngine: the prewarmed, shared part of the Expression model in one worker process.

It owns the execution backend (chosen at prewarm: ``tensorrt`` when ``tensorrt`` imports, CUDA is
present and a prebuilt engine is in the cache; else ``torch-cuda-compiled`` on CUDA; else
``torch-cpu``) and the process's one FrameBatcher, which every ExpressionRenderer submits to. Torch
is imported inside ``prewarm``, so importing this module stays cheap.

Prepared avatars are cached per image hash (a weak map: an avatar lives as long as the ModelPool
LRU or a session holds it), with their appearance tensors already on the device.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.kernel.errors import InvalidImage, PrewarmFailed
from farm.kernel.settings import Settings
from farm.render.base import AvatarSource
from farm.render.batching import FrameBatcher
from farm.render.expression.prepare import PreparedAvatar, image_hash, load_image, prepare_avatar
from farm.render.expression.renderer import ExpressionRenderer, FrameRequest
from farm.render.speech.model import load_model

if TYPE_CHECKING:
    from farm.render.expression.backends import Backend

log = logging.getLogger(__name__)

BACKEND_NAMES = (
    "tensorrt",
    "torch-cuda-compiled",
    "torch-cuda",
    "torch-cpu",
    "torch-cpu-compiled",
    "onnxruntime",
)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class DeviceAvatar:
    """A prepared face plus its tensors on the backend's device (the handle renderers carry)."""

    prepared: PreparedAvatar
    appearance: Any  # torch.Tensor (3, S, S) float32 on the device
    keypoints: Any  # torch.Tensor (68, 2) float32 on the device

    @property
    def key(self) -> str:
        return self.prepared.image_hash


class ExpressionEngine:
    """RenderEngine "expression" (see ``farm.render.base.RenderEngine``)."""

    name = "expression"

    def __init__(
        self,
        *,
        size: int = 512,
        max_batch: int = 16,
        tick_s: float = 0.040,
        backend: str | None = None,
        engine_cache_dir: Path | None = None,
        onnx_dir: Path | None = None,
    ) -> None:
        if backend is not None and backend not in BACKEND_NAMES:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKEND_NAMES}")
        self.size = size
        self.max_batch = max_batch
        self.tick_s = tick_s
        self._requested_backend = backend
        self._engine_cache_dir = engine_cache_dir
        self._onnx_dir = onnx_dir
        self._backend: Backend | None = None
        self._batcher: FrameBatcher[FrameRequest, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._avatars: weakref.WeakValueDictionary[str, DeviceAvatar] = weakref.WeakValueDictionary()
        self.prewarm_s: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ExpressionEngine:
        return cls(
            size=settings.expression_size,
            max_batch=settings.expression_max_batch,
            tick_s=1.0 / settings.fps,
            engine_cache_dir=settings.data_dir / "engines",
            onnx_dir=settings.data_dir / "onnx",
        )

    @property
    def backend(self) -> str:
        return self._backend.name if self._backend is not None else "unloaded"

    @property
    def batcher(self) -> FrameBatcher[FrameRequest, np.ndarray]:
        self.prewarm()
        assert self._batcher is not None
        return self._batcher

    # ------------------------------------------------------------------ lifecycle
    def prewarm(self) -> None:
        """Choose and load the backend, warm it at every batch bucket, start the batcher. Idempotent."""
        with self._lock:
            if self._batcher is not None:
                return
            started = time.perf_counter()
            try:
                backend = self._load_backend()
                from farm.render.expression.backends import batch_buckets

                backend.warmup(batch_buckets(self.max_batch))
                load_model()  # the viseme model every session's mouth reads (numpy, shared)
            except Exception as exc:
                raise PrewarmFailed("expression backend failed to load", cause=repr(exc)) from exc
            self._backend = backend
            batcher: FrameBatcher[FrameRequest, np.ndarray] = FrameBatcher(
                self._infer, max_batch_size=self.max_batch, max_wait_s=self.tick_s, name="expression-batcher"
            )
            batcher.start()
            self._batcher = batcher
            self.prewarm_s = time.perf_counter() - started
            log.info(
                "expression engine ready",
                extra={
                    "backend": backend.name,
                    "max_batch": self.max_batch,
                    "prewarm_s": round(self.prewarm_s, 3),
                },
            )

    def _load_backend(self) -> Backend:
        from farm.render.expression import backends
        from farm.render.expression.model import ExpressionConfig

        config = ExpressionConfig(size=self.size)
        choice = self._requested_backend or backends.preferred_backend()
        if choice == "tensorrt":
            loaded = self._load_tensorrt(config)
            if loaded is not None:
                return loaded
            choice = "torch-cuda-compiled"
        if choice == "torch-cuda-compiled":
            return backends.CompiledCudaBackend(config, self.max_batch)
        if choice == "torch-cuda":
            return backends.TorchBackend(config, "cuda")
        if choice == "torch-cpu-compiled":
            return backends.CompiledCpuBackend(config)
        if choice == "onnxruntime":
            onnx_dir = self._onnx_dir or Path("var/onnx")
            path = onnx_dir / f"expression-{config.model_hash()}.onnx"
            if not path.exists():
                backends.export_onnx(config, path)
            return backends.OnnxRuntimeBackend(path, config)
        return backends.TorchBackend(config, "cpu")

    def _load_tensorrt(self, config: Any) -> Backend | None:
        """The TensorRT backend if its engine was built ahead of time; None (logged) otherwise."""
        from farm.render.expression import tensorrt_backend

        cache_dir = self._engine_cache_dir or Path("var/engines")
        plan = tensorrt_backend.find_engine(cache_dir, config, self.max_batch)
        if plan is None:
            log.warning(
                "no prebuilt TensorRT engine for this model, TensorRT version and GPU; falling back to "
                "torch-cuda-compiled (build one with `python -m farm.render.expression.build_engine`)",
                extra={"engine_cache_dir": str(cache_dir), "model_hash": config.model_hash()},
            )
            return None
        return tensorrt_backend.TensorRTBackend(plan, config)

    def close(self) -> None:
        with self._lock:
            batcher, self._batcher = self._batcher, None
            self._backend = None
        if batcher is not None:
            batcher.close()

    # ------------------------------------------------------------------ avatars and sessions
    def load_avatar(self, source: AvatarSource) -> DeviceAvatar:
        """Prepare the face image of ``source`` (cached per image hash)."""
        if source.image_path is None:
            raise InvalidImage("an expression avatar needs a face image", key=source.key)
        return self.prepare_image(load_image(source.image_path))

    def prepare_image(self, image_rgb: np.ndarray) -> DeviceAvatar:
        """Landmarks, alignment and device tensors for an RGB image; reused while anyone holds it."""
        key = image_hash(np.ascontiguousarray(np.asarray(image_rgb)[:, :, :3]))
        cached = self._avatars.get(key)
        if cached is not None:
            return cached
        self.prewarm()
        import torch

        assert self._backend is not None
        prepared = prepare_avatar(image_rgb, self.size)
        device = self._backend.device
        avatar = DeviceAvatar(
            prepared=prepared,
            appearance=torch.from_numpy(prepared.appearance).to(device),
            keypoints=torch.from_numpy(prepared.keypoints).to(device),
        )
        self._avatars[key] = avatar
        return avatar

    def avatar_size_mb(self, avatar: object) -> float:
        assert isinstance(avatar, DeviceAvatar)
        return 2.0 * avatar.prepared.nbytes / 1e6  # host copy plus device copy

    def open_session(self, avatar: object, session_id: str) -> ExpressionRenderer:
        assert isinstance(avatar, DeviceAvatar)
        return ExpressionRenderer(avatar, self.batcher.join(), session_id, self.size)

    # ------------------------------------------------------------------ batched inference
    def _infer(self, requests: list[FrameRequest]) -> list[np.ndarray]:
        """One batch: stack the sessions' inputs, run the backend once, one uint8 frame per request."""
        import torch

        from farm.render.expression.backends import to_uint8_frames

        assert self._backend is not None
        device = self._backend.device
        avatars = [r.avatar for r in requests]
        appearance = torch.stack([a.appearance for a in avatars])  # type: ignore[attr-defined]
        keypoints = torch.stack([a.keypoints for a in avatars])  # type: ignore[attr-defined]
        mouth = torch.from_numpy(np.stack([r.mouth for r in requests])).to(device, non_blocking=True)
        controls = torch.from_numpy(np.stack([r.controls for r in requests])).to(device, non_blocking=True)
        frames = self._backend.run(appearance, keypoints, mouth, controls)
        return to_uint8_frames(frames, len(requests))
