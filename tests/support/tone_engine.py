"""ToneEngine: a small but real RenderEngine for tests of the session layer.

It does what the Renderer protocol promises (16 kHz resampling, one 640-sample frame per tick,
segment ends, interrupt, gestures) with trivial images whose brightness follows the audio level, so
session-layer tests do not depend on a model. It is not a model of a face.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np

from farm.kernel.errors import UnknownGesture
from farm.render.audio import to_mono_16k
from farm.render.base import SAMPLES_PER_FRAME, AvatarFrame, AvatarSource, Renderer

GESTURES = ("wave", "nod")


class ToneRenderer:
    def __init__(self, size: int, session_id: str, frame_delay_s: float = 0.0) -> None:
        self.session_id = session_id
        self._delay_s = frame_delay_s
        self._size = size
        self._audio = np.zeros(0, np.float32)
        self._segment = 0
        self._segment_end_at: int | None = None  # samples left when the flushed segment ends
        self._gesture: str | None = None
        self._index = 0
        self.closed = False

    @property
    def gestures(self) -> tuple[str, ...]:
        return GESTURES

    @property
    def frame_size(self) -> tuple[int, int]:
        return (self._size, self._size)

    def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        self._audio = np.concatenate([self._audio, to_mono_16k(pcm, sample_rate)])

    def flush(self) -> None:
        self._segment_end_at = self._audio.size

    def interrupt(self) -> None:
        self._audio = np.zeros(0, np.float32)
        self._segment_end_at = None

    def trigger(self, gesture: str) -> None:
        if gesture not in GESTURES:
            raise UnknownGesture(f"unknown gesture {gesture!r}")
        self._gesture = gesture

    def pending_frames(self) -> int:
        return math.ceil(self._audio.size / SAMPLES_PER_FRAME)

    def next_frame(self, render: bool = True) -> AvatarFrame:
        if self._delay_s and render:
            time.sleep(self._delay_s)  # simulated render cost (kill-mid-render tests)
        chunk = self._audio[:SAMPLES_PER_FRAME]
        speaking = chunk.size > 0
        self._audio = self._audio[SAMPLES_PER_FRAME:]
        padded = np.zeros(SAMPLES_PER_FRAME, np.float32)
        padded[: chunk.size] = chunk
        level = float(np.sqrt(np.mean(padded**2))) if speaking else 0.0
        segment_end = False
        if self._segment_end_at is not None:
            self._segment_end_at -= SAMPLES_PER_FRAME
            if self._segment_end_at <= 0:
                segment_end, self._segment_end_at = True, None
        shade = int(40 + 200 * min(1.0, level * 4))
        image = np.full((self._size, self._size, 3), shade, np.uint8) if render else None
        frame = AvatarFrame(
            index=self._index,
            image=image,
            audio=(padded * 32767).astype(np.int16),
            speaking=speaking,
            segment_id=self._segment if speaking else None,
            segment_end=segment_end,
            gesture=self._gesture,
            mouth_open=min(1.0, level * 4),
        )
        if segment_end:
            self._segment += 1
        self._gesture = None
        self._index += 1
        return frame

    def close(self) -> None:
        self.closed = True


class ToneEngine:
    """RenderEngine with no weights; ``prewarm_error`` makes prewarm fail, ``prewarm_delay_s`` slows it."""

    def __init__(
        self,
        size: int = 64,
        prewarm_error: str | None = None,
        *,
        name: str = "essence",
        frame_delay_s: float = 0.0,
        prewarm_delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self.prewarm_delay_s = prewarm_delay_s
        self.size = size
        self.frame_delay_s = frame_delay_s
        self.prewarm_error = prewarm_error
        self.prewarmed = threading.Event()
        self.loaded: list[str] = []
        self.renderers: list[ToneRenderer] = []

    @property
    def backend(self) -> str:
        return "numpy"

    def prewarm(self) -> None:
        if self.prewarm_delay_s:
            time.sleep(self.prewarm_delay_s)  # a slow model load (consume-only-when-READY tests)
        if self.prewarm_error:
            raise RuntimeError(self.prewarm_error)
        self.prewarmed.set()

    def load_avatar(self, source: AvatarSource) -> object:
        for path in (source.pack_path, source.image_path):
            if path is not None and not Path(path).exists():
                raise FileNotFoundError(path)
        self.loaded.append(source.key)
        return source.key

    def avatar_size_mb(self, avatar: object) -> float:
        return 1.0

    def open_session(self, avatar: object, session_id: str) -> Renderer:
        renderer = ToneRenderer(self.size, session_id, self.frame_delay_s)
        self.renderers.append(renderer)
        return renderer

    def close(self) -> None:
        pass
