"""Idle and speaking life for any avatar engine: blinks, gaze and head beats, one step per 40 ms frame.

People blink every few seconds, more often where speech starts and pauses; they glance away as
they begin a phrase and come back to the listener, with small saccades in between; and their head
marks stressed syllables with a small nod. ``LifeState.step`` turns the frame's speech activity and
loudness into those three signals. It is deterministic per seed (a session replays identically)
and costs microseconds; engines map ``Life`` onto their own controls (Essence: eye patches and a
head nudge; Expression: its blink and pitch controls).

Beats: the frame's loudness in dB is compared with a floor that follows the valleys between
syllables (down fast, up slowly); a rise of
``BEAT_RISE_DB`` above it, at least ``BEAT_GAP_S`` after the last beat, while speaking, starts a
beat (about a syllable's stress in conversational speech).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FPS = 25
BLINK_CURVE = (0.5, 1.0, 0.8, 0.45, 0.15)  # lid closure over 200 ms: fast down, slower up
BEAT_CURVE = (0.35, 0.8, 1.0, 0.8, 0.55, 0.3, 0.12)  # a nod down and back over 280 ms
BEAT_RISE_DB = 8.0
BEAT_GAP_S = 0.7
SPEECH_DB = -45.0  # quieter frames are not syllables
IDLE_BLINK_S = (2.5, 6.0)  # seconds between blinks while listening
SPEAKING_BLINK_S = (2.0, 4.5)
PAUSE_S = 0.3  # silence this long inside speech is a phrase boundary


@dataclass(frozen=True, slots=True)
class Life:
    """What the face does this frame besides its mouth.

    ``blink``: 0 open .. 1 shut. ``gaze``: (x, y) in -1..1 in image axes (x right, y down), (0, 0)
    looks at the camera. ``beat``: 0..1 envelope of a small head nod on a stressed syllable.
    """

    blink: float = 0.0
    gaze: tuple[float, float] = (0.0, 0.0)
    beat: float = 0.0


class LifeState:
    """Per-session state of blinks, gaze and beats (``step`` once per frame, ``reset`` on interrupt)."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._frame = 0
        self._blink_at = -100
        self._next_blink = self._frames(1.0, 3.0)
        self._beat_at = -100
        self._floor_db = SPEECH_DB
        self._silent_frames = 1_000
        self._gaze = (0.0, 0.0)
        self._gaze_until = 0
        self._next_saccade = self._frames(1.0, 3.0)

    def _frames(self, lo_s: float, hi_s: float) -> int:
        return self._frame + max(1, round(float(self._rng.uniform(lo_s, hi_s)) * FPS))

    def reset(self) -> None:
        """Speech was cut off: no beat in flight, gaze back to the listener."""
        self._beat_at = -100
        self._gaze, self._gaze_until = (0.0, 0.0), self._frame
        self._silent_frames = 1_000

    def step(self, speaking: bool, energy: float) -> Life:
        """This frame's life from whether it carries speech and its RMS ``energy`` (0..1)."""
        level_db = 20.0 * math.log10(max(energy, 1e-6)) if speaking else -120.0
        starts_phrase = speaking and level_db > SPEECH_DB and self._silent_frames >= PAUSE_S * FPS
        voiced = speaking and level_db > SPEECH_DB
        self._silent_frames = 0 if voiced else self._silent_frames + 1
        if starts_phrase:
            self._on_phrase_start()
        life = Life(blink=self._blink(speaking), gaze=self._look(speaking), beat=self._beat(voiced, level_db))
        self._frame += 1
        return life

    def _on_phrase_start(self) -> None:
        if self._frame - self._blink_at > 2 * FPS and self._rng.random() < 0.4:
            self._next_blink = self._frame + 1  # a blink as the phrase begins
        if self._rng.random() < 0.5:  # glance away to think, then back to the listener
            side = float(self._rng.choice([-1.0, 1.0]))
            up = float(self._rng.choice([0.0, -0.6]))
            self._gaze = (side * float(self._rng.uniform(0.6, 1.0)), up)
            self._gaze_until = self._frames(0.4, 1.0)

    def _blink(self, speaking: bool) -> float:
        if self._frame >= self._next_blink:
            self._blink_at = self._frame
            lo, hi = SPEAKING_BLINK_S if speaking else IDLE_BLINK_S
            self._next_blink = self._frames(lo, hi)
        k = self._frame - self._blink_at
        return BLINK_CURVE[k] if 0 <= k < len(BLINK_CURVE) else 0.0

    def _look(self, speaking: bool) -> tuple[float, float]:
        if self._frame >= self._gaze_until and self._gaze != (0.0, 0.0):
            self._gaze = (0.0, 0.0)  # back to the listener
            self._next_saccade = self._frames(1.0, 3.0)
        elif self._frame >= self._next_saccade and self._gaze == (0.0, 0.0):
            reach = 0.35 if speaking else 0.5
            self._gaze = (float(self._rng.uniform(-reach, reach)), float(self._rng.uniform(-0.3, 0.3)))
            self._gaze_until = self._frames(0.3, 1.0)
        return self._gaze

    def _beat(self, voiced: bool, level_db: float) -> float:
        if (
            voiced
            and level_db - self._floor_db > BEAT_RISE_DB
            and self._frame - self._beat_at >= BEAT_GAP_S * FPS
        ):
            self._beat_at = self._frame
        # the floor tracks the valleys between syllables: down fast, up slowly
        target = max(level_db, SPEECH_DB - 10.0)
        self._floor_db += (0.3 if target < self._floor_db else 0.04) * (target - self._floor_db)
        k = self._frame - self._beat_at
        return BEAT_CURVE[k] if 0 <= k < len(BEAT_CURVE) else 0.0
