"""SpeechQueue: queued 16 kHz speech cut into 40 ms frames, with segment bookkeeping.

Semantics shared with the Renderer protocol (``farm/render/base.py``):

* ``push(samples)`` appends to the open segment, opening a new one (next id) if none is open.
* ``flush()`` closes the open segment; its last frame carries ``segment_end=True`` (zero-padded to
  640 samples). A flush after the segment's audio was already played yields one silent frame that
  carries the ``segment_end`` so the end is never lost.
* A frame is taken only when 640 samples are queued, or the segment is flushed; a partial,
  unflushed tail waits (the frame is idle) instead of being played with a gap inside it.
* ``clear()`` (interrupt) drops everything queued; the next frame is idle.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from farm.render.base import SAMPLES_PER_FRAME


@dataclass(slots=True)
class _Segment:
    segment_id: int
    chunks: deque[np.ndarray] = field(default_factory=deque)
    length: int = 0
    flushed: bool = False
    played: int = 0  # samples taken so far
    last_taken: int = 0  # real samples in the last frame taken (the rest is zero padding)

    def take(self, count: int) -> np.ndarray:
        out = np.zeros(count, np.float32)
        filled = 0
        while filled < count and self.chunks:
            chunk = self.chunks[0]
            n = min(count - filled, chunk.shape[0])
            out[filled : filled + n] = chunk[:n]
            filled += n
            if n == chunk.shape[0]:
                self.chunks.popleft()
            else:
                self.chunks[0] = chunk[n:]
        self.length -= filled
        self.played += filled
        self.last_taken = filled
        return out

    def peek(self, count: int) -> np.ndarray:
        parts, total = [], 0
        for chunk in self.chunks:
            if total >= count:
                break
            parts.append(chunk[: count - total])
            total += parts[-1].shape[0]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


@dataclass(frozen=True, slots=True)
class SpeechFrame:
    """640 samples (float32, 16 kHz) and what they belong to."""

    samples: np.ndarray
    speaking: bool
    segment_id: int | None
    segment_end: bool
    offset: int = 0  # samples of the segment played before this frame
    real: int = 0  # samples of ``samples`` that are speech (a flushed tail is zero-padded)


IDLE_SAMPLES = np.zeros(SAMPLES_PER_FRAME, np.float32)
IDLE_SAMPLES.setflags(write=False)


class SpeechQueue:
    """Not thread-safe on its own; the renderer holds a lock around it."""

    def __init__(self) -> None:
        self._segments: deque[_Segment] = deque()
        self._ids = itertools.count(1)

    def push(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        if not self._segments or self._segments[-1].flushed:
            self._segments.append(_Segment(next(self._ids)))
        segment = self._segments[-1]
        segment.chunks.append(np.asarray(samples, np.float32))
        segment.length += samples.shape[0]

    def flush(self) -> None:
        if self._segments and not self._segments[-1].flushed:
            self._segments[-1].flushed = True

    def clear(self) -> None:
        self._segments.clear()

    def pending_frames(self, hold: int = 0) -> int:
        """Frames ready to take. An open (unflushed) segment keeps back a frame until the ``hold``
        samples after it have arrived too, so a frame that reads ``hold`` samples of look-ahead sees
        the same look-ahead however its audio was chunked."""
        total = 0
        for segment in self._segments:
            if segment.flushed:
                full, rest = divmod(segment.length, SAMPLES_PER_FRAME)
                total += full + (1 if rest or full == 0 else 0)
            else:
                total += max(0, segment.length - hold) // SAMPLES_PER_FRAME
        return total

    def take_frame(self) -> SpeechFrame:
        """The next 40 ms: speech if a full frame (or a flushed tail) is queued, else idle."""
        # Only the last segment can be open, so the front one is either flushed or the only one.
        if self._segments:
            segment = self._segments[0]
            if segment.length >= SAMPLES_PER_FRAME or segment.flushed:
                offset = segment.played
                samples = segment.take(SAMPLES_PER_FRAME)
                end = segment.flushed and segment.length == 0
                if end:
                    self._segments.popleft()
                return SpeechFrame(samples, True, segment.segment_id, end, offset, segment.last_taken)
        return SpeechFrame(IDLE_SAMPLES, False, None, False)

    def ahead(self, segment_id: int | None, count: int) -> tuple[np.ndarray, bool]:
        """Up to ``count`` queued samples of segment ``segment_id`` after the current position, and
        whether they reach the end of that (flushed) segment."""
        if self._segments and self._segments[0].segment_id == segment_id:
            segment = self._segments[0]
            return segment.peek(count), segment.flushed and segment.length <= count
        return np.zeros(0, np.float32), True  # the segment ended with the frame just taken

    def lookahead(self, count: int) -> np.ndarray:
        """Up to ``count`` queued samples after the current position (across segments)."""
        parts, total = [], 0
        for segment in self._segments:
            if total >= count:
                break
            part = segment.peek(count - total)
            parts.append(part)
            total += part.shape[0]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
