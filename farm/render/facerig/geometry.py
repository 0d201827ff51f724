"""Rotated rectangles and the crops MediaPipe's graphs feed their models.

Coordinates are image pixels in OpenCV's convention (an integer is a pixel centre), the convention
MediaPipe's normalised coordinates times the image size also follow. A ``RotatedRect`` maps onto a
model's square input tensor the way MediaPipe's ImageToTensor and ImageCropping calculators warp:
the rectangle's corners land on the tensor's corners (``image_to_tensor_converter_opencv.cc``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

Affine = np.ndarray
"""A (2, 3) float64 affine matrix: ``dst = m[:, :2] @ src + m[:, 2]``."""


@dataclass(frozen=True, slots=True)
class RotatedRect:
    """A rectangle in image pixels, rotated by ``angle`` radians about its centre.

    The rectangle's x axis points along ``(cos a, sin a)`` in image coordinates (y down), so a
    positive angle turns clockwise on screen.
    """

    cx: float
    cy: float
    width: float
    height: float
    angle: float = 0.0

    def tensor_to_image(self, out_w: int, out_h: int, *, flip_x: bool = False) -> Affine:
        """The affine mapping tensor pixels (0..out_w, 0..out_h) onto this rectangle in the image.

        ``flip_x`` mirrors the tensor left-right (the iris model sees the image-right eye mirrored).
        """
        c, s = math.cos(self.angle), math.sin(self.angle)
        sx, sy = self.width / out_w, self.height / out_h
        m = np.array([[c * sx, -s * sy, 0.0], [s * sx, c * sy, 0.0]], dtype=np.float64)
        if flip_x:  # tensor x -> out_w - x
            m[:, 2] += m[:, 0] * out_w
            m[:, 0] *= -1.0
        centre = m[:, :2] @ np.array([out_w / 2.0, out_h / 2.0]) + m[:, 2]
        m[:, 2] += np.array([self.cx, self.cy]) - centre
        return m

    def corners(self) -> np.ndarray:
        """(4, 2) corners: top-left, top-right, bottom-right, bottom-left (in the rect's frame)."""
        unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
        return apply_affine(self.tensor_to_image(1, 1), unit)


def apply_affine(m: Affine, points: np.ndarray) -> np.ndarray:
    """(N, 2) points through a 2x3 affine."""
    return points @ m[:, :2].T + m[:, 2]


def normalize_angle(angle: float) -> float:
    """An angle folded into [-pi, pi)."""
    return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


def rect_from_points(points: np.ndarray, start: int, end: int, scale: float) -> RotatedRect:
    """MediaPipe's DetectionsToRects + RectTransformation with ``square_long``.

    The axis-aligned box of ``points`` (N, >=2) gives centre and size; the rotation makes the vector
    ``points[start] -> points[end]`` horizontal; the box is squared on its longer side and scaled.
    """
    xy = points[:, :2].astype(np.float64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre = (lo + hi) / 2.0
    side = float(max(hi[0] - lo[0], hi[1] - lo[1])) * scale
    d = xy[end] - xy[start]
    angle = normalize_angle(math.atan2(float(d[1]), float(d[0])))
    return RotatedRect(float(centre[0]), float(centre[1]), side, side, angle)


def warp_to_tensor(
    image: np.ndarray,
    rect: RotatedRect,
    size: int,
    value_range: tuple[float, float],
    *,
    border: int = cv2.BORDER_REPLICATE,
    flip_x: bool = False,
) -> tuple[np.ndarray, Affine]:
    """Crop ``rect`` from an RGB uint8 image into a (1, size, size, 3) float32 tensor.

    Pixel values are scaled linearly from 0..255 to ``value_range``. Returns the tensor and the
    tensor -> image affine (to project the model's outputs back).
    """
    m = rect.tensor_to_image(size, size, flip_x=flip_x)
    crop = cv2.warpAffine(
        image,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=border,
        borderValue=(0, 0, 0),
    )
    lo, hi = value_range
    tensor = crop.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
    return tensor[None], m
