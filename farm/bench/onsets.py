"""Onset analysis for the room benches, pure functions over timestamped samples (unit-tested).

* ``audio_onset``: the first audio level after a moment that is louder than ``LOUD``;
* ``MouthModel.onset``: the first video frame after a moment whose mouth region leaves the avatar's
  idle appearance (by more than the idle noise just before the moment);
* ``MouthModel.back_to_idle``: after a ``lk.clear_buffer``, the first frame from which the mouth
  stays idle-looking (barge-in).

Frames are ``(t, thumbnail)`` with ``THUMB``×``THUMB`` RGB thumbnails; levels are ``(t, rms)`` with
the RMS on the int16 scale. Times may be any one clock (perf_counter for the Python viewer, epoch
seconds for a browser).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from farm.render.essence import EssenceRenderer, LoadedAvatar

THUMB = 64  # viewer thumbnails (px) for onset detection
LOUD = 1500.0  # RMS (int16 scale) above which an audio frame counts as the tone
IDLE_RUN = 5  # frames the mouth must stay idle-looking for the barge-in to count as done


@dataclass
class MouthModel:
    """Recognises a talking mouth: the mouth box differs from every idle frame of the avatar."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in thumbnail pixels
    idle: list[np.ndarray]

    @classmethod
    def of(cls, avatar: LoadedAvatar) -> MouthModel:
        width, height = avatar.pack.frame_size
        places = avatar.placements["idle"]
        x0 = min(p.x0 for p in places) * THUMB // width
        y0 = min(p.y0 for p in places) * THUMB // height
        x1 = -(-max(p.x1 for p in places) * THUMB // width)
        y1 = -(-max(p.y1 for p in places) * THUMB // height)
        renderer = EssenceRenderer(avatar, "bench-idle")
        idle = [cv2.resize(renderer.next_frame().pixels, (THUMB, THUMB)) for _ in range(250)]
        return cls((x0, y0, x1, y1), [cls._crop(i, (x0, y0, x1, y1)) for i in idle[::2]])

    @staticmethod
    def _crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, x1, y1 = box
        return image[y0:y1, x0:x1].astype(np.int16)

    def talking(self, thumb: np.ndarray, margin: float) -> float:
        crop = self._crop(thumb, self.box)
        return min(float(np.mean(np.abs(crop - ref))) for ref in self.idle) - margin

    def margin(self, frames: Sequence[tuple[float, np.ndarray]], before: float) -> float | None:
        """The idle noise of the (up to) 20 frames just before ``before``, plus 3 levels."""
        baseline = [self.talking(thumb, 0.0) for t, thumb in frames if t <= before][-20:]
        return max(baseline) + 3.0 if baseline else None

    def onset(self, frames: Sequence[tuple[float, np.ndarray]], after: float) -> float | None:
        """Time of the first frame after ``after`` whose mouth leaves the idle appearance, by more
        than the idle noise of the (up to) 20 frames just before ``after`` plus 3 levels."""
        margin = self.margin(frames, after)
        if margin is None:
            return None
        return next((t for t, thumb in frames if t > after and self.talking(thumb, margin) > 0), None)

    def back_to_idle(
        self, frames: Sequence[tuple[float, np.ndarray]], after: float, margin: float
    ) -> float | None:
        """Time of the first frame after ``after`` that starts ``IDLE_RUN`` idle-looking frames in a row."""
        later = [(t, self.talking(thumb, margin) <= 0) for t, thumb in frames if t > after]
        for i in range(len(later) - IDLE_RUN + 1):
            if all(idle for _, idle in later[i : i + IDLE_RUN]):
                return later[i][0]
        return None


def audio_onset(levels: Iterable[tuple[float, float]], after: float) -> float | None:
    """Time of the first audio frame after ``after`` louder than ``LOUD`` (RMS, int16 scale)."""
    return next((t for t, level in levels if t > after and level > LOUD), None)
