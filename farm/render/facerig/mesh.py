"""The 468-point face mesh and the iris model, with the ROIs MediaPipe's graphs crop for them.

* Mesh (``face_landmark/face_landmark_cpu.pbtxt``): the detection's box, rotated so the eyes are
  level, 1.5x, squared on its long side, warped to 192x192 RGB in [0, 1] (border replicated). The
  outputs are 468 (x, y, z) in tensor pixels and a face-presence logit. The crop is the
  crop-and-upscale step: a 40-pixel face is resampled to 192 pixels.
* Iris (``iris_landmark/iris_landmark_cpu.pbtxt``): per eye, the square on the axis-aligned box of
  its two corners, rotated level, 2.3x, warped to 64x64; the image-right eye is mirrored on the way
  in and out. Outputs 71 eye-contour points and 5 iris points (centre, then 4 edge points).

``z`` is MediaPipe's relative depth scaled like ``x`` (smaller is nearer the camera), not metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from farm.render.facerig.detector import Detection
from farm.render.facerig.geometry import (
    RotatedRect,
    apply_affine,
    normalize_angle,
    rect_from_points,
    warp_to_tensor,
)
from farm.render.facerig.loader import TfliteModel

MESH_INPUT = 192
IRIS_INPUT = 64
MESH_ROI_SCALE = 1.5
EYE_ROI_SCALE = 2.3
PRESENCE_THRESHOLD = 0.5

# The iris model's 71 eye-contour points, as mesh indices in the model's output order (MediaPipe's
# iris-tracking graph, ``UpdateFaceLandmarksCalculator``). The 362/263 eye is fed mirrored, so its
# list also starts at its outer corner.
EYE_CONTOUR_R: tuple[int, ...] = (
    33, 7, 163, 144, 145, 153, 154, 155, 133,  # lower lid, outer -> inner corner
    246, 161, 160, 159, 158, 157, 173,  # upper lid
    130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,  # halo 2
    226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,  # halo 3
    35, 124, 46, 53, 52, 65,  # halo 4, brow lower edge
    143, 111, 117, 118, 119, 120, 121, 128, 245, 156, 70, 63, 105, 66, 107, 55, 193,  # halo 5
)  # fmt: skip
EYE_CONTOUR_L: tuple[int, ...] = (
    263, 249, 390, 373, 374, 380, 381, 382, 362,
    466, 388, 387, 386, 385, 384, 398,
    359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
    446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
    265, 353, 276, 283, 282, 295,
    372, 340, 346, 347, 348, 349, 350, 357, 465, 383, 300, 293, 334, 296, 336, 285, 417,
)  # fmt: skip


def roi_from_detection(detection: Detection) -> RotatedRect:
    """``face_detection_front_detection_to_roi.pbtxt``: eyes (keypoints 0 -> 1) level, 1.5x, square."""
    x0, y0, x1, y1 = detection.box
    side = max(x1 - x0, y1 - y0) * MESH_ROI_SCALE
    d = detection.keypoints[1] - detection.keypoints[0]
    angle = normalize_angle(math.atan2(float(d[1]), float(d[0])))
    return RotatedRect((x0 + x1) / 2.0, (y0 + y1) / 2.0, side, side, angle)


class FaceMeshModel:
    """``face_landmark.tflite``: a face ROI -> 468 points in image pixels and a presence probability."""

    def __init__(self, *, num_threads: int = 1) -> None:
        self._model = TfliteModel("face_landmark.tflite", num_threads=num_threads)

    def predict(self, image: np.ndarray, roi: RotatedRect) -> tuple[np.ndarray, float]:
        tensor, m = warp_to_tensor(image, roi, MESH_INPUT, (0.0, 1.0))
        outputs = self._model(tensor)
        raw = next(o for o in outputs if o.size == 468 * 3).reshape(468, 3)
        logit = float(next(o for o in outputs if o.size == 1).reshape(()))
        points = np.empty((468, 3), dtype=np.float32)
        points[:, :2] = apply_affine(m, raw[:, :2])
        points[:, 2] = raw[:, 2] * (roi.width / MESH_INPUT)
        return points, 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, logit))))


@dataclass(frozen=True, slots=True)
class EyeResult:
    """One eye from the iris model, in image pixels: 71 contour points and 5 iris points."""

    contour: np.ndarray  # (71, 3), order of EYE_CONTOUR_R / EYE_CONTOUR_L
    iris: np.ndarray  # (5, 3): centre, then image-right edge, top, image-left edge, bottom


class IrisModel:
    """``iris_landmark.tflite`` over the eye ROIs of a mesh."""

    def __init__(self, *, num_threads: int = 1) -> None:
        self._model = TfliteModel("iris_landmark.tflite", num_threads=num_threads)

    def predict(self, image: np.ndarray, mesh: np.ndarray, eye: Literal["R", "L"]) -> EyeResult:
        """``eye`` "R": the 33/133 eye (image left); "L": the 362/263 eye, fed mirrored."""
        mirrored = eye == "L"
        corners = mesh[[362, 263]] if mirrored else mesh[[33, 133]]
        roi = rect_from_points(corners, 0, 1, EYE_ROI_SCALE)
        tensor, m = warp_to_tensor(image, roi, IRIS_INPUT, (0.0, 1.0), flip_x=mirrored)
        outputs = self._model(tensor)
        contour = self._project(next(o for o in outputs if o.size == 71 * 3).reshape(71, 3), m, roi)
        iris = self._project(next(o for o in outputs if o.size == 5 * 3).reshape(5, 3), m, roi)
        if mirrored:  # the mirrored crop lists the edges image-left first: reorder to image-right first
            iris = iris[[0, 3, 2, 1, 4]]
        return EyeResult(contour, iris)

    @staticmethod
    def _project(raw: np.ndarray, m: np.ndarray, roi: RotatedRect) -> np.ndarray:
        points = np.empty((raw.shape[0], 3), dtype=np.float32)
        points[:, :2] = apply_affine(m, raw[:, :2])  # m includes the mirror
        points[:, 2] = raw[:, 2] * (roi.width / IRIS_INPUT)
        return points
