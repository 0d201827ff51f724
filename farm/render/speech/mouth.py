"""From viseme probabilities to a mouth, per session: the stream fed in play order, then coarticulation.

``VisemeTrack`` is what a renderer holds. Per 40 ms frame it is told which speech segment the frame
belongs to, where in that segment the frame starts, and the queued audio after it (the look-ahead);
it feeds the model exactly the segment's audio in order (one ``VisemeStream`` per segment, reset at
each new segment and on ``reset()``: an interrupt), so a frame's row does not depend on how the
audio was chunked. When the look-ahead has not arrived (a live stream running dry) the newest row
stands in for the missing one: the mouth lags a little rather than guessing. Idle frames are
silence.

``Coarticulation`` smooths the rows into viseme weights with a per-viseme attack and release
(lips shut at once for p/b/m, open again quickly; vowels glide), then blends the visemes' mouth
targets with their dominance (``visemes.TARGETS``): a p between two vowels still shuts the lips,
a t takes its lip shape from the vowels around it. Silence relaxes towards a closed mouth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from farm.render.base import SAMPLES_PER_FRAME
from farm.render.speech.model import SILENCE_ROW, VisemeModel
from farm.render.speech.visemes import (
    DOMINANCE,
    INDEX,
    N_VISEMES,
    PP,
    ROUNDED,
    SIL,
    TARGET_OPEN,
    TARGET_PRESS,
    TARGET_WIDTH,
    VOWELS,
)

OPEN_DEADZONE = 0.03  # below this opening (and unpressed) the mouth is exactly the relaxed closed one
ATTACK = np.full(N_VISEMES, 0.7, np.float32)
RELEASE = np.full(N_VISEMES, 0.5, np.float32)
ATTACK[PP], RELEASE[PP] = 1.0, 0.8
ATTACK[INDEX["FF"]] = 0.9
ATTACK[list(VOWELS)] = 0.75
ATTACK[list(ROUNDED)] = 0.9  # lips round quickly: a short "oo" still shows
ATTACK[SIL], RELEASE[SIL] = 0.45, 0.6


@dataclass(frozen=True, slots=True)
class MouthPose:
    """The mouth of one frame: ``open`` 0..1, ``width`` -1 round .. +1 spread, ``press`` 0..1 lips
    pressed shut; ``weights`` (15,) the smoothed, dominance-weighted share of each viseme."""

    open: float
    width: float
    press: float
    weights: np.ndarray

    @property
    def rounding(self) -> float:
        return max(0.0, -self.width)


CLOSED = MouthPose(0.0, 0.0, 0.0, SILENCE_ROW)


class Coarticulation:
    """Attack/release smoothing and dominance blending (see the module docstring)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._weights = SILENCE_ROW.copy()

    def step(self, probabilities: np.ndarray) -> MouthPose:
        p = np.asarray(probabilities, np.float32)
        rate = np.where(p > self._weights, ATTACK, RELEASE)
        self._weights = self._weights + rate * (p - self._weights)
        dominance = self._weights * DOMINANCE
        share = dominance / max(float(dominance.sum()), 1e-6)
        press = float(share @ TARGET_PRESS)
        openness = float(share @ TARGET_OPEN) * (1.0 - press)  # pressed lips do not part
        if openness < OPEN_DEADZONE and press < 0.5:
            return MouthPose(0.0, 0.0, 0.0, SILENCE_ROW)  # relaxed: no residue of faint classes
        return MouthPose(openness, float(share @ TARGET_WIDTH), press, share)


_FINISHED = 1 << 62  # ``_fed`` once a segment's stream was finished: nothing more belongs to it


class VisemeTrack:
    """Per-session viseme state of a renderer (see the module docstring)."""

    def __init__(self, model: VisemeModel) -> None:
        self.model = model
        self._stream = model.stream()
        self.coarticulation = Coarticulation()
        self._segment: int | None = None
        self._fed = 0  # samples of the current segment given to the stream
        self._rows: deque[np.ndarray] = deque()  # rows of frames not yet played
        self._first_row = 0  # segment frame index of self._rows[0]
        self._last = SILENCE_ROW

    @property
    def lookahead_samples(self) -> int:
        return self.model.lookahead_samples

    def reset(self) -> None:
        """Forget the stream (an interrupt); the mouth relaxes from where it is over the next frames."""
        self._stream.reset()
        self._segment = None
        self._fed = 0
        self._rows.clear()
        self._first_row = 0
        self._last = SILENCE_ROW

    def probabilities(
        self, segment_id: int | None, offset: int, window: np.ndarray, complete: bool
    ) -> np.ndarray:
        """The row of the frame starting ``offset`` samples into segment ``segment_id`` (None: idle).

        ``window`` is the frame's samples followed by whatever of the segment is queued after it (up
        to ``lookahead_samples``); ``complete``: the segment is flushed and ``window`` reaches its end.
        """
        if segment_id is None:
            return SILENCE_ROW
        if segment_id != self._segment:
            self._stream.reset()
            self._segment, self._fed, self._first_row = segment_id, 0, 0
            self._rows.clear()
        new = window[max(0, self._fed - offset) :]
        if offset + window.shape[0] > self._fed:
            self._rows.extend(self._stream.push(new))
            self._fed = offset + window.shape[0]
        if complete and self._fed != _FINISHED:
            self._rows.extend(self._stream.finish())
            self._fed = _FINISHED
        frame = offset // SAMPLES_PER_FRAME
        while self._rows and self._first_row < frame:
            self._rows.popleft()
            self._first_row += 1
        if self._rows and self._first_row == frame:
            self._last = self._rows.popleft()
            self._first_row += 1
        elif complete:  # a silent frame carrying a flush after the segment was played out
            self._last = SILENCE_ROW
        return self._last

    def step(self, segment_id: int | None, offset: int, window: np.ndarray, complete: bool) -> MouthPose:
        """Advance one frame: its row, smoothed into a mouth."""
        return self.coarticulation.step(self.probabilities(segment_id, offset, window, complete))
