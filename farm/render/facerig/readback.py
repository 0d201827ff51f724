"""Reading the mouth back from rendered frames: lip gap and mouth width, in pixels and per face.

Viewers judge lip-sync on pixels, not on the renderer's internal mouth state, so the lip-sync bench
measures closure and rounding on the frames themselves. Each frame is read on its own (detection,
then the mesh in the detection's crop, MediaPipe's still-image mode), so a picture reads the same
whatever came before it, and each gives

* ``lip_gap_px``: the inner-lip gap, the mean of three upper/lower inner-lip pairs
  (``topology.LIP_GAP_PAIRS``: under both cupid's-bow peaks and at the midline);
* ``mouth_width_px``: the outer mouth corners' distance (61-291);
* ``iod_px``: the outer eye corners' distance (33-263), the face's scale, which no mouth shape moves.

The relative values (``lip_gap_rel``, ``width_rel``) divide by ``iod_px``, so they compare across
engines, frame sizes and avatars. No iris model runs (lips do not need it): about 3-4 ms a frame on
one core at 512x512.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from farm.render.facerig import topology as topo
from farm.render.facerig.rig import FaceRig


@dataclass(frozen=True, slots=True)
class MouthReading:
    """The mouth in one frame; ``found`` False (and nan values) when no face was found in it."""

    found: bool
    lip_gap_px: float
    mouth_width_px: float
    iod_px: float

    @property
    def lip_gap_rel(self) -> float:
        """Lip gap in inter-ocular distances (nan when no face)."""
        return self.lip_gap_px / self.iod_px if self.found else math.nan

    @property
    def width_rel(self) -> float:
        """Mouth width in inter-ocular distances (nan when no face)."""
        return self.mouth_width_px / self.iod_px if self.found else math.nan


MISSING = MouthReading(False, math.nan, math.nan, math.nan)


def mouth_reading(points: np.ndarray) -> MouthReading:
    """The reading of one face's mesh points (468 or 478, >= 2 columns)."""
    xy = points[:, :2].astype(np.float64)
    upper = [a for a, _ in topo.LIP_GAP_PAIRS]
    lower = [b for _, b in topo.LIP_GAP_PAIRS]
    gap = float(np.linalg.norm(xy[lower] - xy[upper], axis=1).mean())
    left, right = topo.MOUTH_CORNERS_OUTER
    eye_l, eye_r = topo.EYE_OUTER_CORNERS
    width = float(np.linalg.norm(xy[right] - xy[left]))
    iod = float(np.linalg.norm(xy[eye_r] - xy[eye_l]))
    return MouthReading(True, gap, width, iod)


class MouthReader:
    """Reads the mouth in frames; one reader per thread (it holds LiteRT interpreters)."""

    def __init__(self) -> None:
        self._rig = FaceRig(with_iris=False)

    def read(self, frame_rgb: np.ndarray) -> MouthReading:
        """The mouth of the largest face in an (H, W, 3) uint8 RGB frame (tiles when none is whole)."""
        image = np.ascontiguousarray(frame_rgb)
        face = self._rig.find(image, tiles=False) or self._rig.find(image)
        return MISSING if face is None else mouth_reading(face.points)


def read_mouths(frames: Iterable[np.ndarray]) -> list[MouthReading]:
    """One reading per frame of a clip."""
    reader = MouthReader()
    return [reader.read(frame) for frame in frames]
