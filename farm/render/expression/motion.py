"""Per-session motion for Expression: idle life (blinks, head sway) and gestures as motion programs.

Everything here is analytic and runs on the CPU per session per frame (microseconds); it produces
the ``controls`` row the network consumes (order ``CONTROLS`` in ``model.py``: blink, yaw, pitch,
roll, smile, brow). Gestures carry the same names as Essence's clips so a trigger means the same on
both models; each is a short curve over time added to the idle motion.

Randomness is seeded per session (``MotionState(seed)``), so a session replays identically.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from farm.kernel.errors import UnknownGesture

FPS = 25
CONTROLS = ("blink", "yaw", "pitch", "roll", "smile", "brow")
N_CONTROLS = len(CONTROLS)
BLINK, YAW, PITCH, ROLL, SMILE, BROW = range(N_CONTROLS)

# Mouth-opening twin of ExpressionNet.mouth_params (numpy, for AvatarFrame.mouth_open and tests).
LOUDNESS_MID = 1.6  # log Σ mel power where the mouth is half open (voiced speech at about RMS 0.045)
LOUDNESS_SCALE = 1.3  # RMS 0.01 → nearly closed, RMS 0.2 → nearly fully open
WINDOW_WEIGHTS = np.array([0.1, 0.2, 0.4, 0.2, 0.1], dtype=np.float32)


def mouth_opening(mel_window: np.ndarray) -> float:
    """Opening in [0, 1] the network will use for this (MEL_WINDOW, 80) log-mel window."""
    peak = mel_window.max(axis=1, keepdims=True)
    loudness = (peak[:, 0] + np.log(np.exp(mel_window - peak).sum(axis=1))).astype(np.float64)
    loud = float((loudness * WINDOW_WEIGHTS).sum())
    opening = 1.0 / (1.0 + math.exp(-(loud - LOUDNESS_MID) / LOUDNESS_SCALE))
    return min(1.0, max(0.0, (opening - 0.08) / 0.92))


def _bump(t: float, rise: float, fall: float) -> float:
    """Smooth 0→1→0 envelope on t in [0, 1] with eased rise and fall fractions."""
    if t <= 0.0 or t >= 1.0:
        return 0.0
    if t < rise:
        return 0.5 - 0.5 * math.cos(math.pi * t / rise)
    if t > 1.0 - fall:
        return 0.5 - 0.5 * math.cos(math.pi * (1.0 - t) / fall)
    return 1.0


def _nod(t: float) -> np.ndarray:
    out = np.zeros(N_CONTROLS, np.float32)
    out[PITCH] = 0.10 * math.sin(2 * math.pi * 2.0 * t) * _bump(t, 0.15, 0.3)
    return out


def _tilt(t: float) -> np.ndarray:
    out = np.zeros(N_CONTROLS, np.float32)
    envelope = _bump(t, 0.25, 0.3)
    out[ROLL] = 0.12 * envelope
    out[YAW] = 0.04 * envelope
    out[BROW] = 0.4 * envelope
    return out


def _smile(t: float) -> np.ndarray:
    out = np.zeros(N_CONTROLS, np.float32)
    out[SMILE] = _bump(t, 0.2, 0.3)
    out[BROW] = 0.2 * out[SMILE]
    return out


@dataclass(frozen=True, slots=True)
class MotionProgram:
    """A gesture: a control curve over ``duration_s`` (argument: progress in [0, 1])."""

    name: str
    duration_s: float
    curve: Callable[[float], np.ndarray]

    @property
    def frames(self) -> int:
        return max(1, round(self.duration_s * FPS))


PROGRAMS: dict[str, MotionProgram] = {
    p.name: p
    for p in (
        MotionProgram("talk_head_nod_subtle", 1.2, _nod),
        MotionProgram("head_tilt", 2.0, _tilt),
        MotionProgram("smile", 2.4, _smile),
    )
}
GESTURES: tuple[str, ...] = tuple(PROGRAMS)

_BLINK_CURVE = (0.45, 1.0, 0.85, 0.45, 0.15)  # 200 ms


class MotionState:
    """Idle blinks and head sway plus the gesture playing, one ``step()`` per frame."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._frame = 0
        self._next_blink = int(self._rng.integers(40, 100))
        self._blink_at = -100
        self._phases = self._rng.uniform(0.0, 2 * math.pi, size=(3, 3))
        self._gesture: MotionProgram | None = None
        self._gesture_start = 0
        self._speech_level = 0.0

    def trigger(self, name: str) -> None:
        """Start ``name`` on the next frame (restarts it if playing). Raises UnknownGesture."""
        program = PROGRAMS.get(name)
        if program is None:
            raise UnknownGesture(f"unknown gesture {name!r}", gesture=name, known=list(GESTURES))
        self._gesture = program
        self._gesture_start = self._frame

    def step(self, opening: float) -> tuple[np.ndarray, str | None]:
        """Controls for this frame and the gesture visible in it; ``opening`` is the mouth opening."""
        controls = np.zeros(N_CONTROLS, np.float32)
        self._speech_level = 0.9 * self._speech_level + 0.1 * opening
        controls[BLINK] = self._blink()
        controls[YAW : ROLL + 1] = self._sway()
        controls[PITCH] += 0.05 * (opening - self._speech_level)  # a small bob on stressed syllables
        gesture_name = None
        if self._gesture is not None:
            progress = (self._frame - self._gesture_start) / self._gesture.frames
            if progress >= 1.0:
                self._gesture = None
            else:
                controls += self._gesture.curve(progress)
                gesture_name = self._gesture.name
        self._frame += 1
        return controls, gesture_name

    def _blink(self) -> float:
        if self._frame >= self._next_blink:
            self._blink_at = self._frame
            self._next_blink = self._frame + int(self._rng.integers(60, 140))  # every 2.4-5.6 s
        k = self._frame - self._blink_at
        return _BLINK_CURVE[k] if 0 <= k < len(_BLINK_CURVE) else 0.0

    def _sway(self) -> np.ndarray:
        """Slow sum-of-sines head motion (radians), livelier while speaking."""
        t = self._frame / FPS
        gain = 1.0 + 1.5 * self._speech_level
        freqs = np.array([0.11, 0.23, 0.37])
        waves = np.sin(2 * math.pi * freqs[None, :] * t + self._phases).sum(axis=1) / 3.0
        return (np.array([0.05, 0.03, 0.02]) * gain * waves).astype(np.float32)
