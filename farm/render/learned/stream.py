"""Queued speech cut into the motion model's chunks: 5 frames each, with their HuBERT audio window.

The reference's online configuration reads audio in chunks of (3 past, 5 current, 2 future) frames
of 40 ms: one HuBERT call sees 6480 samples (1920 before the chunk, its 3200, 1360 after), keeps
the features of the 5 current frames, and moves on by 3200 samples. So a chunk can start once its
5 frames and 1360 samples (85 ms) of look-ahead are queued, or once its segment is flushed (the
missing future is silence). That is the bounded look-ahead: no frame waits for more than 85 ms of
audio after it, plus the rest of its own chunk (at most 4 frames).

Segments keep the Renderer protocol's semantics (``farm.render.base``): ``push`` appends to the
open segment (opening one if needed), ``flush`` closes it and its last frame carries
``segment_end``; a flush after all its audio was chunked still yields one silent frame with the
end; ``clear`` drops everything. Each segment starts with 1920 samples of silence as its past.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from farm.render.base import SAMPLES_PER_FRAME
from farm.render.learned.signatures import AUDIO_WINDOW_SAMPLES

CHUNK_FRAMES = 5
PAST_SAMPLES = 3 * SAMPLES_PER_FRAME  # 1920
CHUNK_SAMPLES = CHUNK_FRAMES * SAMPLES_PER_FRAME  # 3200
FUTURE_SAMPLES = AUDIO_WINDOW_SAMPLES - PAST_SAMPLES - CHUNK_SAMPLES  # 1360 = 85 ms
LOOKAHEAD_MS = FUTURE_SAMPLES * 1000 // 16_000
HUBERT_KEEP = slice(6, 16)  # of the 20 features of a window, the 10 of the 5 current frames


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """Up to 5 frames of one segment and the 6480-sample window their features come from."""

    segment_id: int
    frames: tuple[np.ndarray, ...]  # each (640,) float32
    window: np.ndarray  # (6480,) float32
    ends_segment: bool  # the last frame ends a flushed segment


@dataclass(slots=True)
class _Segment:
    segment_id: int
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    position: int = 0  # samples already cut into chunks
    flushed: bool = False
    ended: bool = False  # its segment_end frame has been cut

    @property
    def remaining(self) -> int:
        return self.samples.shape[0] - self.position

    def ready(self) -> bool:
        if self.flushed:
            return not self.ended
        return self.remaining >= CHUNK_SAMPLES + FUTURE_SAMPLES


class SpeechTimeline:
    """Not thread-safe; the renderer holds its lock around it."""

    def __init__(self) -> None:
        self._segments: deque[_Segment] = deque()
        self._ids = itertools.count(1)

    def push(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        if not self._segments or self._segments[-1].flushed:
            self._segments.append(_Segment(next(self._ids)))
        segment = self._segments[-1]
        segment.samples = np.concatenate([segment.samples, np.asarray(samples, np.float32)])

    def flush(self) -> None:
        if self._segments and not self._segments[-1].flushed:
            self._segments[-1].flushed = True

    def clear(self) -> None:
        self._segments.clear()

    def buffered_samples(self) -> int:
        """Samples queued but not yet cut into chunks (an open segment's tail waiting for look-ahead)."""
        return sum(s.remaining for s in self._segments)

    def take(self) -> SpeechChunk | None:
        """The next chunk if one can start now (see the module docstring), else None."""
        while self._segments and self._segments[0].ended:
            self._segments.popleft()
        if not self._segments or not self._segments[0].ready():
            return None
        segment = self._segments[0]
        start = segment.position
        count = min(CHUNK_SAMPLES, segment.remaining)
        n_frames = max(1, -(-count // SAMPLES_PER_FRAME))
        body = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32)
        body[:count] = segment.samples[start : start + count]
        window = np.zeros(AUDIO_WINDOW_SAMPLES, np.float32)
        past = segment.samples[max(0, start - PAST_SAMPLES) : start]
        window[PAST_SAMPLES - past.shape[0] : PAST_SAMPLES] = past
        ahead = segment.samples[start : start + CHUNK_SAMPLES + FUTURE_SAMPLES]
        window[PAST_SAMPLES : PAST_SAMPLES + ahead.shape[0]] = ahead
        segment.position += count
        ends = segment.flushed and segment.remaining == 0
        if ends:
            segment.ended = True
            self._segments.popleft()
        frames = tuple(body[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME] for i in range(n_frames))
        return SpeechChunk(segment.segment_id, frames, window, ends)


def hubert_frame_features(encoding: np.ndarray) -> np.ndarray:
    """(5, 1024): the 10 HuBERT frames (50 Hz) of a window's current chunk, averaged in pairs (25 Hz)."""
    kept = encoding[..., HUBERT_KEEP, :]
    return kept.reshape(*kept.shape[:-2], CHUNK_FRAMES, 2, kept.shape[-1]).mean(axis=-2)


def to_float_mono(pcm: np.ndarray, channels: int = 1) -> np.ndarray:
    """int16/int32/float PCM (interleaved or (n, channels)) as float32 mono in [-1, 1], same rate."""
    data = np.asarray(pcm)
    if data.dtype == np.int16:
        data = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        data = data.astype(np.float32) / 2147483648.0
    else:
        data = data.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    elif channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return np.clip(data, -1.0, 1.0)
