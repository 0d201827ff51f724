"""LearnedExpressionEngine: the prewarmed, shared part of the learned Expression model (``expression-2``).

Prewarm validates the operator's weights directory against the declared signatures (one clear
``ModelWeightsInvalid`` otherwise, so the worker never reports READY on a broken set), loads the
graphs on the best backend available (TensorRT where it can run, else ONNX Runtime; the torch
modules with random weights when asked for, for throughput runs and tests), computes the silence
features idle motion is conditioned on, runs one warm-up frame and chunk, and starts the engine's
two cross-session batchers: frames (stitch, warp, decoder, paste-back; one batch per tick) and
motion (HuBERT and the diffusion sampler; one batch per 5-frame chunk).

Avatars are prepared once (``avatar.py``) and kept on disk and in a weak in-memory map, so opening a
session costs no extractor work. Importing this module is cheap: numpy only; onnxruntime and torch
load inside prewarm.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.kernel.errors import FarmError, InvalidImage, ModelWeightsInvalid, PrewarmFailed
from farm.render.base import AvatarSource
from farm.render.batching import FrameBatcher
from farm.render.learned.avatar import AvatarCache, PreparedAvatar, cache_key, files_key, image_hash, prepare
from farm.render.learned.pipeline import DeviceAvatar, FrameJob, MotionHistory, MotionJob, Pipeline, upload
from farm.render.learned.renderer import LearnedRenderer
from farm.render.learned.signatures import GRAPH_SET, GRAPH_SET_VERSION, GRAPHS, IMAGE_SIZE, RENDER_SIZE
from farm.render.learned.stream import LOOKAHEAD_MS

if TYPE_CHECKING:
    from farm.kernel.settings import Settings
    from farm.render.learned.graphs import GraphBackend

log = logging.getLogger(__name__)

MODEL_NAME = "expression-2"
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
DEFAULT_SAMPLING_STEPS = 10  # the online value in use by integrators (the reference's pkl is not public)


class LearnedExpressionEngine:
    """RenderEngine ``expression-2`` (see ``farm.render.base.RenderEngine``)."""

    name = MODEL_NAME

    def __init__(
        self,
        *,
        weights: Path | None,
        size: int = 512,
        max_batch: int = 16,
        fps: int = 25,
        backend: str = "auto",
        preset: str = "full",
        device: str | None = None,
        cache_dir: Path | None = None,
        sampling_steps: int = DEFAULT_SAMPLING_STEPS,
        compile_graphs: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.weights = Path(weights) if weights is not None else None
        self.size = size
        self.max_batch = max_batch
        self.tick_s = 1.0 / fps
        self._requested = backend
        self._preset = preset
        self._device = device
        self._cache = AvatarCache(cache_dir) if cache_dir is not None else None
        self.sampling_steps = sampling_steps
        self._compile = compile_graphs
        self._lock = threading.Lock()
        self._graphs: GraphBackend | None = None
        self._pipeline: Pipeline | None = None
        self._frame_batcher: FrameBatcher[FrameJob, np.ndarray] | None = None
        self._motion_batcher: FrameBatcher[MotionJob, np.ndarray] | None = None
        self._weights_key: str | None = None
        self._avatars: weakref.WeakValueDictionary[str, DeviceAvatar] = weakref.WeakValueDictionary()
        self.prewarm_s: float | None = None
        self.fallback_reasons: list[str] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> LearnedExpressionEngine:
        return cls(
            weights=settings.expression_weights,
            size=settings.expression_size,
            max_batch=settings.expression_max_batch,
            fps=settings.fps,
            cache_dir=settings.data_dir / "learned-avatars",
        )

    @staticmethod
    def describe(settings: Settings) -> dict[str, Any]:
        """What this farm would serve as ``expression-2`` (cheap: nothing is loaded or imported)."""
        weights = settings.expression_weights
        return {
            "model": MODEL_NAME,
            "configured": weights is not None,
            "backend": "onnxruntime" if weights is not None else None,
            "backends_in_order": ["tensorrt", "onnxruntime"],
            "input_size": IMAGE_SIZE,
            "render_size": RENDER_SIZE,
            "frame_size": settings.expression_size,
            "fps": settings.fps,
            "capacity_per_gpu": None,  # no GPU measurement yet: `farm bench expression --model learned`
            "lookahead_ms": LOOKAHEAD_MS,
            "weights_dir": str(weights) if weights is not None else None,
            "graph_set": GRAPH_SET,
            "graph_set_version": GRAPH_SET_VERSION,
        }

    @property
    def backend(self) -> str:
        return self._graphs.name if self._graphs is not None else "unloaded"

    @property
    def pipeline(self) -> Pipeline:
        self.prewarm()
        assert self._pipeline is not None
        return self._pipeline

    # ------------------------------------------------------------------ lifecycle
    def prewarm(self) -> None:
        """Validate, load, warm up, start the batchers. Idempotent; ModelWeightsInvalid on a bad set."""
        with self._lock:
            if self._frame_batcher is not None:
                return
            started = time.perf_counter()
            try:
                graphs = self._load_graphs()
                from farm.render.learned.pipeline import silence_features
                from farm.render.learned.validate import check_outputs

                check_outputs(graphs)
                pipeline = Pipeline(
                    graphs, sampling_steps=self.sampling_steps, silence_features=silence_features(graphs)
                )
                self._warm_up(pipeline)
            except FarmError:
                raise
            except Exception as exc:
                raise PrewarmFailed("the learned expression graphs failed to load", cause=repr(exc)) from exc
            self._graphs, self._pipeline = graphs, pipeline
            self._frame_batcher = FrameBatcher(
                pipeline.infer_frames,
                max_batch_size=self.max_batch,
                max_wait_s=self.tick_s,
                name="learned-frames",
            )
            self._motion_batcher = FrameBatcher(
                pipeline.infer_motion,
                max_batch_size=self.max_batch,
                max_wait_s=self.tick_s / 4,
                name="learned-motion",
            )
            self._frame_batcher.start()
            self._motion_batcher.start()
            self.prewarm_s = time.perf_counter() - started
            log.info(
                "learned expression engine ready",
                extra={
                    "backend": graphs.name,
                    "max_batch": self.max_batch,
                    "prewarm_s": round(self.prewarm_s, 3),
                },
            )

    def _load_graphs(self) -> GraphBackend:
        if self._requested == "torch":
            return self._torch_graphs()
        if self.weights is None:
            raise ModelWeightsInvalid(
                f"{MODEL_NAME} has no weights: set FARM_EXPRESSION_WEIGHTS to a directory of the "
                f"{GRAPH_SET} ONNX graphs (`farm models pull ditto`, then `farm models check DIR`)"
            )
        from farm.render.learned import tensorrt
        from farm.render.learned.validate import require_valid

        report = require_valid(self.weights)
        reason = tensorrt.unavailable_reason()
        if self._requested == "tensorrt" and reason is not None:
            raise PrewarmFailed(f"TensorRT requested but unavailable: {reason}")
        if reason is not None:
            self.fallback_reasons.append(f"tensorrt: {reason}")
            log.info("learned expression: TensorRT unavailable, using ONNX Runtime", extra={"reason": reason})
        from farm.render.learned.graphs import OrtGraphs

        files = {g.spec.name: g.path for g in report.graphs if g.path is not None}
        return OrtGraphs(files)

    def _torch_graphs(self) -> GraphBackend:
        from farm.render.learned.fullsize import PRESETS, build_modules
        from farm.render.learned.graphs import TorchGraphs, cuda_available

        device = self._device or ("cuda" if cuda_available() else "cpu")
        modules = build_modules(PRESETS[self._preset], device=device)
        self._weights_key = f"random-{self._preset}-seed0"
        return TorchGraphs(modules, device, compile_graphs=self._compile)

    def _warm_up(self, pipeline: Pipeline) -> None:
        from farm.render.learned.avatar import synthetic
        from farm.render.learned.motion import driving_keypoints

        avatar = upload(pipeline.backend, synthetic(0, self.size))
        history = MotionHistory(
            avatar.prepared.source.vector(), avatar.cond_extras, pipeline.silence_row, seed=0
        )
        (motion,) = pipeline.infer_motion([MotionJob(history, np.zeros(6480, np.float32))])
        x_d, _ = driving_keypoints(avatar.prepared.source, motion[0], motion[0])
        pipeline.infer_frames([FrameJob(avatar, x_d)])

    def close(self) -> None:
        with self._lock:
            batchers = (self._frame_batcher, self._motion_batcher)
            self._frame_batcher = self._motion_batcher = None
            graphs, self._graphs, self._pipeline = self._graphs, None, None
        for batcher in batchers:
            if batcher is not None:
                batcher.close()
        if graphs is not None:
            graphs.close()

    # ------------------------------------------------------------------ avatars
    def load_avatar(self, source: AvatarSource) -> DeviceAvatar:
        if source.image_path is None:
            raise InvalidImage(f"an {MODEL_NAME} avatar needs a face image", key=source.key)
        return self.prepare_image(load_image(source.image_path))

    def weights_key(self) -> str:
        """What prepared avatars depend on: the bytes of the two per-avatar graphs (memoised)."""
        if self._weights_key is None:
            assert self.weights is not None
            from farm.render.learned.validate import check_graph

            paths = [
                check_graph(g, self.weights).path
                for g in GRAPHS
                if g.name in ("appearance_extractor", "motion_extractor")
            ]
            self._weights_key = files_key([p for p in paths if p is not None])
        return self._weights_key

    def prepare_image(self, image_rgb: np.ndarray) -> DeviceAvatar:
        """The device avatar of a face image: memory, else disk cache, else extractors (then cached)."""
        self.prewarm()
        image = np.ascontiguousarray(np.asarray(image_rgb)[:, :, :3])
        key = cache_key(image_hash(image), self.weights_key(), self.size)
        found = self._avatars.get(key)
        if found is not None:
            return found
        prepared = self._cache.load(key) if self._cache is not None else None
        if prepared is None:
            prepared = prepare(image, self._extract, self.size, self.weights_key())
            if self._cache is not None:
                self._cache.save(prepared)
        return self.upload(prepared)

    def upload(self, prepared: PreparedAvatar) -> DeviceAvatar:
        """A prepared avatar on this engine's device (kept while a session or the pool holds it)."""
        avatar = upload(self.pipeline.backend, prepared)
        self._avatars[prepared.key] = avatar
        return avatar

    def _extract(self, crop: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        b = self.pipeline.backend
        image = b.asarray(crop)
        feature = b.to_host(b.run("appearance_extractor", {"image": image})["pred"])[0]
        motion = {k: b.to_host(v)[0] for k, v in b.run("motion_extractor", {"image": image}).items()}
        return feature, motion

    def avatar_size_mb(self, avatar: object) -> float:
        assert isinstance(avatar, DeviceAvatar)
        return 2.0 * avatar.prepared.nbytes / 1e6  # host copy plus device copy

    # ------------------------------------------------------------------ sessions
    def open_session(self, avatar: object, session_id: str) -> LearnedRenderer:
        assert isinstance(avatar, DeviceAvatar)
        self.prewarm()
        assert (
            self._frame_batcher is not None
            and self._motion_batcher is not None
            and self._pipeline is not None
        )
        history = MotionHistory(
            avatar.prepared.source.vector(),
            avatar.cond_extras,
            self._pipeline.silence_row,
            seed=zlib.crc32(session_id.encode()),
        )
        return LearnedRenderer(
            avatar, self._frame_batcher.join(), self._motion_batcher.join(), history, session_id
        )

    def batcher_stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, batcher in (("frames", self._frame_batcher), ("motion", self._motion_batcher)):
            if batcher is not None:
                out[name] = {
                    "batches": batcher.stats.batches,
                    "mean_batch": round(batcher.stats.mean_batch_size, 2),
                }
        return out


def load_image(path: Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB; raises InvalidImage."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InvalidImage("the face image cannot be decoded", path=str(path)) from exc
