"""One toolkit for every bench: one percentile definition, one summary format, one ``finish`` that
stamps machine and date, one speech-like sample signal, so every p95 in BENCHMARKS.md means the
same thing, and one ``--smoke`` flag (``parse_args``) with which the test suite runs every bench at
test size, so no bench can rot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for an empty sequence."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(values: Sequence[float], digits: int = 1) -> dict[str, float]:
    """``{n, median, p95, p99, min, max}`` of ``values`` (nearest-rank percentiles); ``{}`` if empty."""
    if not values:
        return {}
    return {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "p95": round(percentile(values, 95), digits),
        "p99": round(percentile(values, 99), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def machine() -> dict[str, Any]:
    """What a number was measured on: host, CPU model, cores, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, smoke: Mapping[str, Any]
) -> argparse.Namespace:
    """Parse a bench's arguments, with ``--smoke``: the same run, same code and same JSON, at test size.

    ``smoke`` maps option destinations to their test-size values: with ``--smoke`` they replace the
    defaults (an option given explicitly still wins), so smoke only ever shrinks parameters. The
    result then says ``"smoke": true`` (``finish``): its numbers are not measurements."""
    shown = ", ".join(f"{dest.replace('_', '-')}={_shown(value)}" for dest, value in smoke.items())
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"the same run at test size, in seconds ({shown}); the JSON says smoke: true",
    )
    argv = list(argv or [])
    known, _ = parser.parse_known_args(argv)
    if known.smoke:
        parser.set_defaults(**smoke)
    return parser.parse_args(argv)


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout (progress records and summaries)."""
    print(json.dumps(record), flush=True)


def finish(result: dict[str, Any], out: Path | None, *, smoke: bool = False) -> None:
    """Stamp smoke or not, the machine and the date on a bench result, print it as one JSON line,
    write it to ``out``."""
    result["smoke"] = smoke
    result["machine"] = machine()
    result["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    emit(result)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")


def speech_like(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """Deterministic speech-like audio (float32, -1..1): voiced syllables of varying loudness and vowel
    colour, with pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 125.0 + 25.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    bright = 0.5 + 0.5 * np.sin(2 * np.pi * 0.9 * t)  # slides between dark (o) and bright (i) vowels
    voiced = sum((1.0 / k) * (1.0 + 2.0 * bright * (k > 12)) * np.sin(k * phase) for k in range(1, 30))
    envelope = np.zeros_like(t)
    pos = 0.1
    while pos < seconds - 0.3:
        length, loud = rng.uniform(0.12, 0.3), rng.uniform(0.2, 1.0)
        span = (t >= pos) & (t < pos + length)
        envelope[span] = loud * np.sin(np.pi * (t[span] - pos) / length)
        pos += length + rng.uniform(0.03, 0.15)
    level = 0.25 / np.sqrt(np.mean(voiced**2))  # RMS 0.25 at the loudest syllable peaks (-12 dBFS)
    return np.clip(level * voiced * envelope, -1.0, 1.0).astype(np.float32)


def sample_clip(seconds: float = 0.2, rate: int = 16_000) -> bytes:
    """WAV bytes of a short voiced clip (the farm demo's synthesiser) for sessions whose length is
    not the point of the measurement."""
    from farm.devtools.demo import synth_speech, wav_bytes

    return wav_bytes(synth_speech(seconds=seconds + 0.2)[: int(seconds * rate)], rate)


def sample_portrait_png() -> bytes:
    """PNG bytes of the sample portrait (scikit-image's astronaut) for agent builds."""
    from farm.devtools.demo import portrait_png

    return portrait_png()
