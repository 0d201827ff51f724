"""The face rig: detection -> 468-point mesh -> irises, for still images and for frame sequences.

``FaceRig.find`` (stills): short-range detection on the frame; if nothing, full range on the frame;
if still nothing, full range on overlapping tiles of half, a quarter, ... of the long side down to
``min_tile`` (a small face in a full-body photo). The largest face wins. Its mesh ROI is cropped and
upscaled from the full-resolution image, then both eyes are refined by the iris model (the eye
contours overwrite the mesh's eye region, as MediaPipe's iris-tracking graph does) and the iris
points complete the 478-point layout.

Verified against mediapipe 0.10.21 itself (``FaceMesh(static_image_mode=True)``): the 468 points
agree to 0.006-0.13 px on average on three portraits (notes: /work/notes/mediapipe.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from farm.render.facerig import topology as topo
from farm.render.facerig.detector import FULL_RANGE, SHORT_RANGE, Detection, FaceDetector, detect_tiled
from farm.render.facerig.geometry import RotatedRect
from farm.render.facerig.mesh import (
    EYE_CONTOUR_L,
    EYE_CONTOUR_R,
    PRESENCE_THRESHOLD,
    FaceMeshModel,
    IrisModel,
    roi_from_detection,
)

MIN_TILE = 256
_EYES: tuple[tuple[Literal["R", "L"], tuple[int, ...], int, tuple[int, ...]], ...] = (
    ("R", EYE_CONTOUR_R, topo.IRIS_R_CENTRE, topo.EYE_R_UPPER + topo.EYE_R_LOWER),
    ("L", EYE_CONTOUR_L, topo.IRIS_L_CENTRE, topo.EYE_L_UPPER + topo.EYE_L_LOWER),
)
"""Per eye: the iris model's side, its contour's mesh indices, its iris block, its lid points."""


@dataclass(frozen=True, slots=True)
class Face:
    """One face: 478 points (x, y, z) in image pixels, presence, its mesh ROI and its detection.

    ``detection`` is None when the mesh ran in a ROI given by the caller (no detector ran).
    """

    points: np.ndarray  # (478, 3) float32
    presence: float
    roi: RotatedRect
    detection: Detection | None

    def ibug68(self) -> np.ndarray:
        return topo.mesh_to_ibug68(self.points)


class FaceRig:
    """Detection, mesh and iris models of one thread (LiteRT interpreters are not thread-safe)."""

    def __init__(self, *, with_iris: bool = True, min_tile: int = MIN_TILE, num_threads: int = 1) -> None:
        self._short = FaceDetector(SHORT_RANGE, num_threads=num_threads)
        self._full = FaceDetector(FULL_RANGE, num_threads=num_threads)
        self._mesh = FaceMeshModel(num_threads=num_threads)
        self._iris = IrisModel(num_threads=num_threads) if with_iris else None
        self.min_tile = min_tile

    def detect(self, image: np.ndarray, *, tiles: bool = True) -> list[Detection]:
        """Faces in an RGB uint8 image, largest first (see the module docstring for the order)."""
        found = self._short.detect(image) or self._full.detect(image)
        tile = max(image.shape[:2]) // 2
        while not found and tiles and tile >= self.min_tile:
            found = detect_tiled(self._full, image, tile)
            tile //= 2
        return sorted(found, key=lambda d: (-d.area, -d.score))

    def find(self, image: np.ndarray, *, tiles: bool = True) -> Face | None:
        """The largest face of a still image with its 478 points, or None."""
        for detection in self.detect(image, tiles=tiles):
            face = self.landmarks(image, roi_from_detection(detection), detection)
            if face is not None:
                return face
        return None

    def landmarks(self, image: np.ndarray, roi: RotatedRect, detection: Detection | None) -> Face | None:
        """Mesh (and irises) inside ``roi``; None when the mesh model says there is no face."""
        mesh, presence = self._mesh.predict(image, roi)
        if presence < PRESENCE_THRESHOLD:
            return None
        points = np.zeros((topo.ALL_POINTS, 3), dtype=np.float32)
        points[: topo.MESH_POINTS] = mesh
        if self._iris is not None:
            self._refine_eyes(image, mesh, points)
        else:  # no iris model: each iris block collapses onto the middle of its eye's lids
            for _, _, centre, lids in _EYES:
                points[centre : centre + 5] = mesh[list(lids)].mean(axis=0)
        return Face(points, presence, roi, detection)

    def _refine_eyes(self, image: np.ndarray, mesh: np.ndarray, points: np.ndarray) -> None:
        assert self._iris is not None
        for eye, contour, centre, lids in _EYES:
            result = self._iris.predict(image, mesh, eye)
            points[list(contour)] = result.contour
            points[centre : centre + 5, :2] = result.iris[:, :2]
            points[centre : centre + 5, 2] = points[list(lids), 2].mean()  # MediaPipe: the lids' mean depth
