"""Small helpers every test layer shares: a WAV clip and a deadline-bounded wait."""

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
