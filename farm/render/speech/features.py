"""The viseme model's audio front end: 40 log-mel bands every 10 ms, four rows per 40 ms frame.

Sub-frame ``j`` (10 ms hop) is a 25 ms Hann window centred on samples [160 j, 160 j + 160), that is
samples [160 j - 120, 160 j + 280) at 16 kHz, zero outside the clip; its 512-point spectrum is
pooled into 40 mel bands (``farm.render.audio.mel_filterbank``) and log-compressed. Frame ``i``
(samples [640 i, 640 i + 640)) is the four sub-frames 4 i .. 4 i + 3 flattened: 160 numbers, and it
needs 120 samples after the frame's end (``FRAME_LOOKAHEAD_SAMPLES``).

``frame_features`` computes a whole clip; ``FeatureStream`` computes the same rows as audio
arrives, one frame at a time (so its output does not depend on how the audio was chunked).
"""

from __future__ import annotations

import functools

import numpy as np

from farm.render.audio import mel_filterbank
from farm.render.base import SAMPLES_PER_FRAME

HOP = 160
WINDOW = 400
N_FFT = 512
N_MELS = 40
SUBFRAMES = SAMPLES_PER_FRAME // HOP  # 4
FEATURES = SUBFRAMES * N_MELS  # 160
LEFT = (WINDOW - HOP) // 2  # 120 samples before a sub-frame
FRAME_LOOKAHEAD_SAMPLES = WINDOW - HOP - LEFT  # 120 samples after the frame's end
LOG_FLOOR = 1e-8


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    window = np.zeros(N_FFT, np.float32)
    window[:WINDOW] = np.hanning(WINDOW + 1)[:-1]
    bank = np.ascontiguousarray(mel_filterbank(N_FFT, N_MELS).T)  # (257, 40)
    window.setflags(write=False)
    bank.setflags(write=False)
    return window, bank


def _rows(windows: np.ndarray) -> np.ndarray:
    """(k, WINDOW) sample windows → (k, N_MELS) log-mel rows."""
    window, bank = _tables()
    padded = np.zeros((windows.shape[0], N_FFT), np.float32)
    padded[:, :WINDOW] = windows
    spectrum = np.fft.rfft(padded * window, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    return np.log(power @ bank + LOG_FLOOR).astype(np.float32)


def frame_features(samples_16k: np.ndarray, extra_frames: int = 0) -> np.ndarray:
    """Features of a whole clip: ``(ceil(n / 640) + extra_frames, FEATURES)`` float32.

    ``extra_frames`` appends rows for frames after the clip's end (the clip continues as silence),
    which a model with look-ahead needs to finish the clip's last frames.
    """
    samples = np.asarray(samples_16k, np.float32)
    count = -(-samples.shape[0] // SAMPLES_PER_FRAME) + extra_frames
    padded = np.zeros(LEFT + count * SAMPLES_PER_FRAME + FRAME_LOOKAHEAD_SAMPLES, np.float32)
    used = min(samples.shape[0], count * SAMPLES_PER_FRAME + FRAME_LOOKAHEAD_SAMPLES)
    padded[LEFT : LEFT + used] = samples[:used]
    windows = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[::HOP][: count * SUBFRAMES]
    return _rows(windows).reshape(count, FEATURES)


class FeatureStream:
    """Incremental ``frame_features``: push audio in any chunking, get the rows as they complete."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(LEFT, np.float32)  # starts at the current frame's first window
        self._received = 0
        self._emitted = 0

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    def push(self, samples_16k: np.ndarray) -> np.ndarray:
        """Add samples; return the rows ``(k, FEATURES)`` whose windows are now complete."""
        chunk = np.asarray(samples_16k, np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, chunk])
        self._received += chunk.shape[0]
        ready = (self._received - FRAME_LOOKAHEAD_SAMPLES) // SAMPLES_PER_FRAME - self._emitted
        return self._emit(max(0, ready))

    def finish(self, extra_frames: int = 0) -> np.ndarray:
        """Zero-pad the tail; return the remaining rows (plus ``extra_frames`` of silence after it)."""
        remaining = -(-self._received // SAMPLES_PER_FRAME) - self._emitted + extra_frames
        need = LEFT + remaining * SAMPLES_PER_FRAME + FRAME_LOOKAHEAD_SAMPLES
        if self._buffer.shape[0] < need:
            self._buffer = np.concatenate([self._buffer, np.zeros(need - self._buffer.shape[0], np.float32)])
        return self._emit(max(0, remaining))

    def _emit(self, count: int) -> np.ndarray:
        rows = np.empty((count, FEATURES), np.float32)
        span = LEFT + SAMPLES_PER_FRAME + FRAME_LOOKAHEAD_SAMPLES
        for k in range(count):  # one frame at a time: the same arithmetic whatever the chunking
            start = k * SAMPLES_PER_FRAME
            windows = np.lib.stride_tricks.sliding_window_view(self._buffer[start : start + span], WINDOW)[
                ::HOP
            ]
            rows[k] = _rows(windows[:SUBFRAMES]).reshape(FEATURES)
        self._buffer = self._buffer[count * SAMPLES_PER_FRAME :]
        self._emitted += count
        return rows
