"""The batched work of the learned model: one call per batch of sessions, two kinds of batch.

* **Frames** (``infer_frames``, per 40 ms tick): stitch → warp → decode → paste-back for every
  session that wants a picture this tick, as one batch per graph.
* **Motion** (``infer_motion``, per 5-frame chunk): HuBERT features of the chunks that carry speech,
  then the diffusion sampler over an 80-frame window per session, all sessions in one batch per
  denoising step. A session's chunks depend on each other (the window slides over its own history),
  so when one batch holds several chunks of the same session they run in rounds, in order.

``MotionHistory`` is one session's sliding state; only the motion batcher's thread touches it, and
a session's jobs reach that thread in the order it submitted them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from farm.render.learned.avatar import PreparedAvatar
from farm.render.learned.diffusion import sample, time_pairs
from farm.render.learned.graphs import GraphBackend
from farm.render.learned.motion import emotion_vector
from farm.render.learned.signatures import COND_DIM, HUBERT_DIM, MOTION_DIM, SEQ_FRAMES
from farm.render.learned.stream import CHUNK_FRAMES, hubert_frame_features

CONTEXT_FRAMES = SEQ_FRAMES - CHUNK_FRAMES  # 75: the reference's online overlap


@dataclass(frozen=True, slots=True, weakref_slot=True)
class DeviceAvatar:
    """A prepared avatar with its per-frame inputs resident on the backend's device."""

    prepared: PreparedAvatar
    feature: Any  # (32, 16, 64, 64) in the warp graph's precision
    x_s: Any  # (21, 3) float32: the source's transformed keypoints
    grid: Any  # (S, S, 2) float32
    mask: Any  # (S, S) float32
    background: Any  # (S, S, 3) uint8
    x_s_host: np.ndarray
    cond_extras: np.ndarray  # (79,) float32: emotion 8 | eye open 2 | eye ball 6 | source keypoints 63

    @property
    def key(self) -> str:
        return self.prepared.key


def upload(backend: GraphBackend, prepared: PreparedAvatar) -> DeviceAvatar:
    x_s = prepared.source.keypoints()
    extras = np.concatenate(
        [emotion_vector(), prepared.eye_open, prepared.eye_ball, prepared.source.kp.reshape(-1)]
    ).astype(np.float32)
    return DeviceAvatar(
        prepared=prepared,
        feature=backend.asarray(prepared.feature.astype(np.float32), for_graph="warp_network"),
        x_s=backend.asarray(x_s),
        grid=backend.asarray(prepared.canvas.grid),
        mask=backend.asarray(prepared.canvas.mask),
        background=backend.asarray(prepared.canvas.background),
        x_s_host=x_s,
        cond_extras=extras,
    )


@dataclass(frozen=True, slots=True)
class FrameJob:
    avatar: DeviceAvatar
    x_d: np.ndarray  # (21, 3) float32 driving keypoints (before stitching)


class MotionHistory:
    """One session's sliding conditioning window and generated motion (see the module docstring)."""

    def __init__(
        self, source_vector: np.ndarray, cond_extras: np.ndarray, silence_row: np.ndarray, seed: int
    ) -> None:
        self.source_vector = source_vector.astype(np.float32)
        self.cond_extras = cond_extras
        self.rng = np.random.default_rng(seed)
        silence = np.concatenate([silence_row, cond_extras]).astype(np.float32)
        self.cond: deque[np.ndarray] = deque([silence] * SEQ_FRAMES, maxlen=SEQ_FRAMES)
        self.motion: deque[np.ndarray] = deque(maxlen=SEQ_FRAMES + CHUNK_FRAMES)
        self.generated = 0
        self.first: np.ndarray | None = None  # d0: the first generated frame (relative driving)

    def add_features(self, features: np.ndarray) -> np.ndarray:
        """Append a chunk's 5 feature rows; return the (80, 1103) window ending with them."""
        for row in features:
            self.cond.append(np.concatenate([row, self.cond_extras]).astype(np.float32))
        return np.stack(self.cond)

    def cond_frame(self) -> np.ndarray:
        """The generated frame just before the window (the source's own motion until there is one)."""
        index = self.generated - CONTEXT_FRAMES - 1
        if index < 0:
            return self.source_vector
        return self.motion[index - (self.generated - len(self.motion))]

    def add_motion(self, frames: np.ndarray) -> None:
        for frame in frames:
            self.motion.append(frame)
        self.generated += frames.shape[0]
        if self.first is None:
            self.first = frames[0].copy()


@dataclass(frozen=True, slots=True)
class MotionJob:
    history: MotionHistory
    window: np.ndarray | None  # (6480,) speech samples; None: a silent (idle) chunk


def _rounds(jobs: list[MotionJob]) -> list[list[int]]:
    """Indices of ``jobs`` grouped so each round holds at most one job per session, in order."""
    per_session: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        per_session.setdefault(id(job.history), []).append(i)
    rounds: list[list[int]] = []
    depth = 0
    while True:
        layer = [indices[depth] for indices in per_session.values() if len(indices) > depth]
        if not layer:
            return rounds
        rounds.append(layer)
        depth += 1


class Pipeline:
    """The two batched inference functions the engine's batchers call."""

    def __init__(self, backend: GraphBackend, *, sampling_steps: int, silence_features: np.ndarray) -> None:
        self.backend = backend
        self.sampling_steps = sampling_steps
        self.silence_features = silence_features.astype(np.float32)  # (5, 1024)
        time_pairs(sampling_steps)  # validates the step count

    @property
    def silence_row(self) -> np.ndarray:
        return self.silence_features[CHUNK_FRAMES // 2]

    # ------------------------------------------------------------------ frames
    def infer_frames(self, jobs: list[FrameJob]) -> list[np.ndarray]:
        b = self.backend
        avatars = [job.avatar for job in jobs]
        kp_source = b.stack([a.x_s for a in avatars])
        kp_driving = b.asarray(np.stack([job.x_d for job in jobs]).astype(np.float32))
        stitched = b.run("stitch_network", {"kp_source": kp_source, "kp_driving": kp_driving})["out"]
        feature = b.stack([a.feature for a in avatars])
        warped = b.run(
            "warp_network", {"feature_3d": feature, "kp_source": kp_source, "kp_driving": stitched}
        )
        render = b.run("decoder", {"feature": warped["out"]})["output"]
        return b.paste_back(
            render,
            b.stack([a.grid for a in avatars]),
            b.stack([a.mask for a in avatars]),
            b.stack([a.background for a in avatars]),
        )

    # ------------------------------------------------------------------ motion
    def infer_motion(self, jobs: list[MotionJob]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(jobs)
        for layer in _rounds(jobs):
            for index, frames in zip(layer, self._motion_round([jobs[i] for i in layer]), strict=True):
                out[index] = frames
        return [frames for frames in out if frames is not None]

    def chunk_features(self, windows: list[np.ndarray]) -> np.ndarray:
        """(n, 5, 1024) features of n speech windows (one batched HuBERT call)."""
        encoding = self.backend.to_host(self.backend.speech_features(self.backend.asarray(np.stack(windows))))
        return hubert_frame_features(encoding).astype(np.float32)

    def _motion_round(self, jobs: list[MotionJob]) -> list[np.ndarray]:
        speech = [i for i, job in enumerate(jobs) if job.window is not None]
        features = [self.silence_features] * len(jobs)
        if speech:
            computed = self.chunk_features([jobs[i].window for i in speech])  # type: ignore[misc]
            for row, i in enumerate(speech):
                features[i] = computed[row]
        windows = np.stack([job.history.add_features(f) for job, f in zip(jobs, features, strict=True)])
        cond_frames = np.stack([job.history.cond_frame() for job in jobs])
        x0 = self._sample(windows, cond_frames, [job.history.rng for job in jobs])
        results = []
        for job, motion in zip(jobs, x0, strict=True):
            frames = motion[-CHUNK_FRAMES:].astype(np.float32)
            job.history.add_motion(frames)
            results.append(frames)
        return results

    def _sample(
        self, windows: np.ndarray, cond_frames: np.ndarray, rngs: list[np.random.Generator]
    ) -> np.ndarray:
        """(B, 80, 265) generated motion for B conditioning windows (the DDIM loop, batched)."""
        b = self.backend
        shape = (SEQ_FRAMES, MOTION_DIM)
        steps = self.sampling_steps
        x = b.asarray(np.stack([rng.standard_normal(shape, dtype=np.float32) for rng in rngs]))
        noises = [
            b.asarray(np.stack([rng.standard_normal(shape, dtype=np.float32) for rng in rngs]))
            for _ in range(steps - 1)
        ]
        cond = b.asarray(windows)
        cond_frame = b.asarray(cond_frames)
        batch = windows.shape[0]

        def step(x_t: Any, t: int) -> tuple[Any, Any]:
            time = b.asarray(np.full(batch, t, np.int64))
            out = b.run("lmdm", {"x": x_t, "cond_frame": cond_frame, "cond": cond, "time_cond": time})
            return out["pred_noise"], out["x_start"]

        return b.to_host(sample(step, x, noises, steps))


def silence_features(backend: GraphBackend) -> np.ndarray:
    """(5, 1024) HuBERT features of a silent window (the idle chunks' conditioning), computed once."""
    encoding = backend.to_host(backend.speech_features(backend.asarray(np.zeros((1, 6480), np.float32))))
    features = hubert_frame_features(encoding)[0]
    assert features.shape == (CHUNK_FRAMES, HUBERT_DIM) and COND_DIM > HUBERT_DIM
    return features.astype(np.float32)
