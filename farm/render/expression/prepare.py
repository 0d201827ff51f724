"""Once-per-image preparation for Expression: landmarks, alignment, appearance arrays.

A face image becomes a ``PreparedAvatar``: the image cropped and aligned by a similarity transform
that puts the eye centres at canonical positions (``model.EYE_Y_FRAC``, ``model.EYE_DISTANCE_FRAC``)
so every face has the same scale and an upright eye line, and the 68 landmarks mapped into that
crop in grid_sample units. The result is keyed by the SHA-256 of the image pixels (``image_hash``);
the engine keeps the device tensors per hash. No torch here: preparation runs before a backend is
chosen and in processes that never load one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from farm.kernel.errors import InvalidImage
from farm.render.landmarks import FaceLandmarks, detect_face

# Canonical alignment: eye centres at these fractions of the crop (the model's geometry assumes it).
EYE_Y_FRAC = 0.42
EYE_DISTANCE_FRAC = 0.16


@dataclass(frozen=True, slots=True)
class PreparedAvatar:
    """One face ready to animate at ``size``×``size``."""

    image_hash: str
    size: int
    appearance: np.ndarray  # (3, size, size) float32 in [0, 1], the aligned crop
    keypoints: np.ndarray  # (68, 2) float32, aligned landmarks in grid units ([-1, 1])
    landmarks_px: np.ndarray  # (68, 2) float32, aligned landmarks in pixels of the crop

    @property
    def nbytes(self) -> int:
        return int(self.appearance.nbytes + self.keypoints.nbytes + self.landmarks_px.nbytes)

    def still_frame(self) -> np.ndarray:
        """The aligned crop as (size, size, 3) uint8 RGB (the neutral frame)."""
        return np.ascontiguousarray((self.appearance.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))


def image_hash(image_rgb: np.ndarray) -> str:
    """SHA-256 of shape and pixels: the cache key of the prepared tensors."""
    image = np.ascontiguousarray(image_rgb)
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def load_image(path: Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB; raises InvalidImage."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InvalidImage("the face image cannot be decoded", path=str(path)) from exc


def alignment_matrix(face: FaceLandmarks, size: int) -> np.ndarray:
    """2×3 similarity transform from image pixels to the canonical crop (eyes level, fixed spacing)."""
    src_l, src_r = face.left_eye.astype(np.float64), face.right_eye.astype(np.float64)
    dst_l = np.array([(0.5 - EYE_DISTANCE_FRAC / 2) * size, EYE_Y_FRAC * size])
    dst_r = np.array([(0.5 + EYE_DISTANCE_FRAC / 2) * size, EYE_Y_FRAC * size])
    src_v, dst_v = src_r - src_l, dst_r - dst_l
    scale = float(np.linalg.norm(dst_v)) / max(float(np.linalg.norm(src_v)), 1e-6)
    angle = np.arctan2(dst_v[1], dst_v[0]) - np.arctan2(src_v[1], src_v[0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    offset = dst_l - rot @ src_l
    return np.hstack([rot, offset[:, None]]).astype(np.float64)


def prepare_avatar(image_rgb: np.ndarray, size: int, face: FaceLandmarks | None = None) -> PreparedAvatar:
    """Detect (unless given), align and crop a face; raises errors.NoFaceFound."""
    import cv2

    image = np.ascontiguousarray(np.asarray(image_rgb)[:, :, :3])
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    face = face or detect_face(image)
    matrix = alignment_matrix(face, size)
    crop = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    points = face.points.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    keypoints = (points + 0.5) / size * 2.0 - 1.0
    return PreparedAvatar(
        image_hash=image_hash(image),
        size=size,
        appearance=np.ascontiguousarray(crop.transpose(2, 0, 1).astype(np.float32) / 255.0),
        keypoints=keypoints.astype(np.float32),
        landmarks_px=points.astype(np.float32),
    )
