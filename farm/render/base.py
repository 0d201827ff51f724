"""The Renderer seam: one streaming interface for every model, so the session runner does not care.

An engine (``RenderEngine``) is the heavy, shared, prewarmed part of a model in one worker process
(pack loader, torch module, batcher). A renderer (``Renderer``) is the light per-session state:
queued audio, the current mouth shape, the gesture playing. Time advances one 40 ms frame per
``next_frame()`` call; keeping to wall-clock time is the frame pump's job (``farm.stream.pump``:
the audio is the clock; a frame whose picture cannot be ready in time is taken with
``next_frame(render=False)``), so the same renderer feeds a real-time LiveKit publisher and a
faster-than-real-time MP4 recorder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE_HZ = 16_000
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE_HZ // FPS  # 640 samples = 40 ms


@dataclass(frozen=True, slots=True)
class AvatarFrame:
    """One 40 ms tick of a session: a video frame and exactly the audio that plays with it."""

    index: int  # frame number since the renderer opened, from 0
    image: np.ndarray | None  # (H, W, 3) uint8 RGB; None when the frame was skipped (render=False)
    audio: np.ndarray  # (SAMPLES_PER_FRAME,) int16 at SAMPLE_RATE_HZ; zeros when idle
    speaking: bool  # this frame carries audio of a speech segment
    segment_id: int | None  # which flushed/unflushed segment the audio belongs to
    segment_end: bool  # last frame of a flushed segment: its playback finishes with this frame
    gesture: str | None  # gesture clip (or motion program) visible in this frame
    mouth_open: float  # 0..1 openness the engine chose (observability and tests)

    @property
    def pixels(self) -> np.ndarray:
        """The image of a rendered frame; ValueError for a skipped one (``next_frame(render=False)``)."""
        if self.image is None:
            raise ValueError(f"frame {self.index} was skipped: it has no image")
        return self.image


@dataclass(frozen=True, slots=True)
class AvatarSource:
    """What to animate: an Essence pack or a face image. ``key`` is the cache key (agent id or hash)."""

    key: str
    pack_path: Path | None = None
    image_path: Path | None = None


@runtime_checkable
class Renderer(Protocol):
    """Per-session streaming renderer (Essence and Expression implement it)."""

    @property
    def gestures(self) -> tuple[str, ...]: ...

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of every frame."""
        ...

    def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Queue speech: int16 (or float in [-1, 1]) mono PCM at any rate; resampled to 16 kHz."""
        ...

    def flush(self) -> None:
        """End the current speech segment; its last frame will have ``segment_end=True``."""
        ...

    def interrupt(self) -> None:
        """Drop every queued sample; the next frame is idle."""
        ...

    def trigger(self, gesture: str) -> None:
        """Start a gesture on the next frame. Raises errors.UnknownGesture for an unknown name."""
        ...

    def pending_frames(self) -> int:
        """Frames of queued audio not yet rendered."""
        ...

    def next_frame(self, render: bool = True) -> AvatarFrame:
        """Advance 40 ms (idle when no audio is queued) and render its image. Never blocks on input.

        ``render=False`` advances exactly as a rendered frame would (its audio is taken, the mouth,
        blink and gesture state step) but draws no pixels: ``image`` is None. The frame pump uses it
        to keep up with the audio clock when rendering falls behind (audio is never stretched: late
        images are skipped and the viewer sees the previous one a little longer)."""
        ...

    def close(self) -> None:
        """Release per-session resources (batcher slot, buffers). Idempotent."""
        ...


class RenderEngine(Protocol):
    """The shared, prewarmed part of a model in one worker process."""

    name: str  # "essence" | "expression"

    @property
    def backend(self) -> str:
        """Execution backend, e.g. "numpy", "torch-cpu", "torch-cuda-compiled", "tensorrt"."""
        ...

    def prewarm(self) -> None:
        """Load weights, compile, run a warm-up inference at every batch size it will use."""
        ...

    def load_avatar(self, source: AvatarSource) -> object:
        """Load (or prepare) an avatar; the result is cached by the ModelPool under ``source.key``."""
        ...

    def avatar_size_mb(self, avatar: object) -> float:
        """Resident size of a loaded avatar, for the LRU bound."""
        ...

    def open_session(self, avatar: object, session_id: str) -> Renderer:
        """A new per-session renderer over a loaded avatar."""
        ...

    def close(self) -> None: ...
