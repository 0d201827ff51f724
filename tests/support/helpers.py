"""Small helpers every test layer shares: a WAV clip, a FLAC clip and a deadline-bounded wait."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def wav_bytes(seconds: float = 0.5, rate: int = 16_000, freq_hz: float = 180.0) -> bytes:
    """A voiced-ish tone as a 16-bit mono WAV."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * freq_hz * t) * 32767).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def flac_bytes(seconds: float, rate: int, channels: int = 1, noise: float = 0.0) -> bytes:
    """Syllables of a 180 Hz tone (3 per second) and pauses as FLAC: without ``noise`` it compresses
    to a small upload that decodes to a long clip."""
    import av

    n = int(seconds * rate)
    t = np.arange(n) / rate
    syllables = np.sin(2 * np.pi * 3 * t) > 0
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * syllables
    if noise:
        voice += noise * np.random.default_rng(rate).standard_normal(n)
    pcm = np.repeat((voice * 32767).astype(np.int16)[None, :], channels, axis=0)
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate)
        stream.layout = "mono" if channels == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16", layout=stream.layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def wait_until(
    probe: Callable[[], T | None],
    *,
    deadline_s: float = 10.0,
    what: str = "the condition",
    interval_s: float = 0.02,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(interval_s)
