"""Motion programs: the idle loop and the named gestures, as one ``Pose`` per 40 ms frame.

Every program is deterministic. The idle loop is built from whole periods of its length, so its
last frame flows into its first. Each gesture starts and ends at the portrait's rest pose, which is
what the idle loop hovers around, so the renderer can cross-fade in and out of it in a few frames.
Amplitudes are in pixels of a 512-pixel frame and scale with the frame size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from farm.render.essence.head import Pose

IDLE_FRAMES = 120  # 4.8 s at 25 fps


def _smooth(t: float) -> float:
    t = min(1.0, max(0.0, t))
    return t * t * (3.0 - 2.0 * t)


def _hold(t: float, rise: float = 0.28, fall: float = 0.28) -> float:
    """0 -> 1 over ``rise``, hold, 1 -> 0 over the last ``fall`` of the clip."""
    return _smooth(t / rise) * _smooth((1.0 - t) / fall)


def _bump(t: float) -> float:
    return math.sin(math.pi * min(1.0, max(0.0, t))) ** 2


def idle_loop(frames: int = IDLE_FRAMES, scale: float = 1.0) -> list[Pose]:
    """Breathing and a slow head sway, periodic in ``frames`` (blinks and gaze are live: ``render.life``)."""
    poses = []
    for i in range(frames):
        theta = 2.0 * math.pi * i / frames
        poses.append(
            Pose(
                roll_deg=0.6 * math.sin(theta + 1.1) + 0.2 * math.sin(2 * theta),
                dx=scale * (1.3 * math.sin(theta) + 0.3 * math.sin(3 * theta + 0.5)),
                dy=scale * (0.5 * math.sin(2 * theta + 0.3)),
                scale=1.0 + 0.002 * math.sin(theta + 2.0),
                breath=scale * 1.2 * math.sin(theta),
            )
        )
    return poses


def _nod(t: float, scale: float) -> Pose:
    nods = math.sin(2.0 * math.pi * 2.0 * t) ** 2 * _hold(t, 0.15, 0.15)
    return Pose(roll_deg=0.5 * _bump(t), dy=scale * 5.0 * nods, scale=1.0 - 0.008 * nods)


def _tilt(t: float, scale: float) -> Pose:
    amount = _hold(t)
    return Pose(roll_deg=7.0 * amount, dx=-scale * 2.5 * amount, dy=scale * 1.0 * amount, smile=0.25 * amount)


def _smile(t: float, scale: float) -> Pose:
    amount = _hold(t, 0.25, 0.3)
    return Pose(dy=-scale * 1.0 * amount, scale=1.0 + 0.006 * amount, smile=amount)


def _wave(t: float, scale: float) -> Pose:
    envelope = _hold(t, 0.2, 0.25)
    wobble = math.sin(2.0 * math.pi * 2.0 * t) * envelope
    return Pose(
        roll_deg=4.0 * wobble,
        dx=scale * 3.0 * wobble,
        dy=-scale * 2.0 * envelope,
        smile=0.8 * envelope,
    )


GESTURES: dict[str, tuple[int, Callable[[float, float], Pose]]] = {
    "talk_head_nod_subtle": (36, _nod),
    "head_tilt": (50, _tilt),
    "smile": (50, _smile),
    "mini_wave_hello": (60, _wave),
}
"""Gesture name -> (length in frames, pose at normalised time t in [0, 1] for a frame scale)."""


def gesture(name: str, scale: float = 1.0) -> list[Pose]:
    """The poses of a named gesture clip (its first and last frames are the rest pose)."""
    frames, program = GESTURES[name]
    return [program(i / (frames - 1), scale) for i in range(frames)]
