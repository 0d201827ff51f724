"""Per-session motion for Expression: the mouth, idle life (blinks, head sway) and gestures.

The mouth row the network consumes (``N_MOUTH``: opening, lip width, rounding, press) comes from
the viseme model (``mouth_controls`` of a coarticulated ``MouthPose``) or, as the lip-sync
baseline, from loudness and formant bands of the log-mel window (``loudness_mouth``: the mapping
the network itself computed before visemes).

Everything here is analytic and runs on the CPU per session per frame (microseconds); it produces
the ``controls`` row the network consumes (order ``CONTROLS`` in ``model.py``: blink, yaw, pitch,
roll, smile, brow). Gestures carry the same names as Essence's clips so a trigger means the same on
both models; each is a short curve over time added to the idle motion.

Randomness is seeded per session (``MotionState(seed)``), so a session replays identically.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from farm.kernel.errors import UnknownGesture
from farm.render.speech.mouth import MouthPose

FPS = 25
CONTROLS = ("blink", "yaw", "pitch", "roll", "smile", "brow")
N_CONTROLS = len(CONTROLS)
BLINK, YAW, PITCH, ROLL, SMILE, BROW = range(N_CONTROLS)

MOUTH = ("opening", "width", "rounding", "press")
N_MOUTH = len(MOUTH)
OPEN_GAIN = 1.0  # viseme opening → the network's opening (its jaw drop at 1.0 is a wide "ah")
PRESS_FROM, PRESS_FULL = 0.3, 0.8  # a pose pressing this much starts / fully shuts the lips

# The loudness baseline (log-mel window → mouth), constants calibrated on log_mel of speech-like
# signals at RMS 0.01-0.3.
LOUDNESS_MID = 1.6  # log Σ mel power where the mouth is half open (voiced speech at about RMS 0.045)
LOUDNESS_SCALE = 1.3  # RMS 0.01 → nearly closed, RMS 0.2 → nearly fully open
WINDOW_WEIGHTS = np.array([0.1, 0.2, 0.4, 0.2, 0.1], dtype=np.float32)


BRIGHT_MID, BRIGHT_SCALE = -0.8, 1.0  # /i/ ≈ +1.4, /e/ ≈ +0.6, /a/ /o/ /u/ ≈ -2
LOW_F1_MID, LOW_F1_SCALE = -1.0, 0.7  # /a/ ≈ -3, /o/ /u/ ≈ 0 to +1.5
BANDS_HZ = ((1700.0, 3200.0), (500.0, 1300.0), (200.0, 500.0), (550.0, 1000.0))  # hi, lo, f1lo, f1hi


def mouth_controls(pose: MouthPose) -> np.ndarray:
    """The network's mouth row for a viseme pose: (opening, width, rounding, press), float32."""
    press = min(1.0, max(0.0, (pose.press - PRESS_FROM) / (PRESS_FULL - PRESS_FROM)))
    return np.array(
        [min(1.0, OPEN_GAIN * pose.open), max(0.0, pose.width), max(0.0, -pose.width), press], np.float32
    )


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    peak = x.max(axis=axis, keepdims=True)
    return np.asarray(np.squeeze(peak, axis=axis) + np.log(np.exp(x - peak).sum(axis=axis)))


@functools.cache
def _band_masks() -> np.ndarray:
    """(4, 80) bool: the mel bins whose centres fall in each of ``BANDS_HZ``."""
    from farm.render.audio import FMAX_HZ, FMIN_HZ, N_MELS

    def hz_to_mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    mels = np.linspace(hz_to_mel(FMIN_HZ), hz_to_mel(FMAX_HZ), N_MELS + 2)[1:-1]
    centres = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    return np.stack([(centres > lo) & (centres < hi) for lo, hi in BANDS_HZ])


def mouth_opening(mel_window: np.ndarray) -> float:
    """The baseline's opening in [0, 1] for a (5, 80) log-mel window (two frames either side)."""
    loud = float((_logsumexp(mel_window.astype(np.float64), axis=1) * WINDOW_WEIGHTS).sum())
    opening = 1.0 / (1.0 + math.exp(-(loud - LOUDNESS_MID) / LOUDNESS_SCALE))
    return min(1.0, max(0.0, (opening - 0.08) / 0.92))


def loudness_mouth(mel_window: np.ndarray) -> np.ndarray:
    """The baseline's mouth row for a (5, 80) log-mel window: loudness opens the jaw, the second
    formant band against the first spreads the lips, low F1 with a dark spectrum rounds them."""
    mel = mel_window.astype(np.float64)
    opening = mouth_opening(mel_window)
    bands = np.stack([_logsumexp(np.where(mask, mel, -1e4), axis=1) for mask in _band_masks()], axis=1)
    hi, lo, f1lo, f1hi = (bands * WINDOW_WEIGHTS[:, None]).sum(axis=0)
    gate = min(1.0, opening * 2.0)
    spread = math.tanh((hi - lo - BRIGHT_MID) / BRIGHT_SCALE)
    low_f1 = 1.0 / (1.0 + math.exp(-(f1lo - f1hi - LOW_F1_MID) / LOW_F1_SCALE))
    return np.array([opening, max(0.0, spread) * gate, max(0.0, -spread) * low_f1 * gate, 0.0], np.float32)


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
