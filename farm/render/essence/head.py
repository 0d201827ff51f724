"""Blinks and head motion for the pack builder: the portrait's own pixels, warped.

* Blinks: the skin above each upper lid is stretched down over the eye (people), or a lid in the
  colour above the eye is painted down over it (animals and drawn characters).
* Head motion: an affine pose (roll about the neck, nod offset, scale) applied with full weight over
  the head and fading out around it; a separate small vertical "breathing" shift of the torso. The
  mouth region lies where the head weight is exactly 1, so a mouth patch moved by the pose matrix
  lands exactly where the base frame shows the mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from farm.render.essence.synth import MouthRegion
from farm.render.landmarks import FaceLandmarks

# ------------------------------------------------------------------------------------------- eyes


def blink(image: np.ndarray, face: FaceLandmarks, amount: float) -> np.ndarray:
    """Close both eyes by ``amount`` (0 open .. 1 shut) by stretching the upper-lid skin down."""
    if amount <= 0.0:
        return image
    out = image.copy()
    for start in (36, 42):
        _blink_eye(out, image, face.points[start : start + 6], amount)
    return out


def _blink_eye(out: np.ndarray, image: np.ndarray, eye: np.ndarray, amount: float) -> None:
    left, right = float(eye[:, 0].min()), float(eye[:, 0].max())
    ew = right - left
    upper = eye[[0, 1, 2, 3]]
    lower = eye[[3, 4, 5, 0]]
    eye_h = max(2.0, float(np.mean(lower[1:3, 1]) - np.mean(upper[1:3, 1])))
    x0 = int(max(0, np.floor(left - 0.25 * ew)))
    x1 = int(min(image.shape[1], np.ceil(right + 0.25 * ew)))
    y0 = int(max(0, np.floor(float(upper[:, 1].min()) - 1.6 * eye_h - 2)))
    y1 = int(min(image.shape[0], np.ceil(float(lower[:, 1].max()) + 2)))
    xs = np.arange(x0, x1, dtype=np.float32)
    up_o, low_o = np.argsort(upper[:, 0]), np.argsort(lower[:, 0])
    y_up = np.interp(xs, upper[up_o, 0], upper[up_o, 1])
    y_low = np.interp(xs, lower[low_o, 0], lower[low_o, 1])
    inside = (xs >= left) & (xs <= right)
    y_low = np.where(inside, y_low, y_up)
    top = y_up - 1.5 * eye_h
    lid = y_up + amount * (y_low - y_up)  # where the upper lid edge is now
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    stretch = (y_up - top) / np.maximum(lid - top, 1e-3)
    map_y = np.where(
        (ys >= top[None, :]) & (ys <= lid[None, :]), top[None, :] + (ys - top[None, :]) * stretch[None, :], ys
    ).astype(np.float32)
    map_x = np.broadcast_to(xs[None, :], map_y.shape).astype(np.float32)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(
        np.float32
    )
    lash = np.exp(-(((ys - lid[None, :]) / 1.2) ** 2)) * inside[None, :] * amount
    warped *= (1.0 - 0.35 * lash)[..., None]
    out[y0:y1, x0:x1] = np.clip(warped + 0.5, 0, 255).astype(np.uint8)


def painted_blink(image: np.ndarray, face: FaceLandmarks, amount: float) -> np.ndarray:
    """Close both eyes by ``amount`` with a lid painted from the fur or skin just above each eye.

    For animals and drawn characters: their eyes are large and what lies above them (brows, ears,
    outlines) must not be stretched over the eye. The eye is the ellipse through its six points,
    grown a little to cover its outline; the lid (the fur or skin just above the eye, slid down with
    it) comes down from its top to ``amount`` of its height.
    """
    if amount <= 0.0:
        return image
    out = image.copy()
    eyes = [face.points[36:42], face.points[42:48]]
    if np.allclose(eyes[0], eyes[1]):
        eyes = eyes[:1]
    for eye in eyes:
        _paint_lid(out, image, eye, amount)
    return out


def _paint_lid(out: np.ndarray, image: np.ndarray, eye: np.ndarray, amount: float) -> None:
    h, w = image.shape[:2]
    cx, cy = float(eye[:, 0].mean()), float(eye[:, 1].mean())
    rx = 0.54 * float(eye[:, 0].max() - eye[:, 0].min()) + 1.0
    ry = 0.55 * float(eye[:, 1].max() - eye[:, 1].min()) / 0.866 + 1.0
    x0, x1 = int(max(0, np.floor(cx - rx - 1))), int(min(w, np.ceil(cx + rx + 2)))
    y0, y1 = int(max(0, np.floor(cy - ry - 1))), int(min(h, np.ceil(cy + ry + 2)))
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    radius = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
    inside = np.clip((1.0 - radius) * max(2.0, 0.2 * min(rx, ry)), 0.0, 1.0)  # a soft edge of ~5 %
    lid_y = cy - ry + amount * 2.0 * ry
    cover = inside * np.clip(lid_y - ys + 0.5, 0.0, 1.0)
    # the lid is the fur/skin band just above the eye, slid down with the lid (mirror-tiled)
    top = cy - ry - 1.0
    band = max(2.0, 0.35 * ry)
    u = np.mod(np.maximum(lid_y - ys, 0.0), 2.0 * band)
    src_y = (top - np.minimum(u, 2.0 * band - u)).astype(np.float32)
    texture = cv2.remap(image, xs, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    mean = texture.reshape(-1, 3).mean(axis=0)
    shade = 0.9 + 0.1 * np.clip((lid_y - ys) / (2.0 * ry), 0.0, 1.0)
    lid = (0.7 * texture + 0.3 * mean) * shade[..., None]
    lash = np.exp(-(((ys - lid_y) / max(1.0, 0.06 * ry)) ** 2)) * inside * amount
    region = image[y0:y1, x0:x1].astype(np.float32)
    painted = region * (1.0 - cover[..., None]) + lid * cover[..., None]
    painted *= (1.0 - 0.55 * lash)[..., None]
    out[y0:y1, x0:x1] = np.clip(painted + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------- head


@dataclass(frozen=True, slots=True)
class Pose:
    """A head pose relative to the portrait: roll (degrees) about the neck pivot, shift, scale."""

    roll_deg: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    breath: float = 0.0  # torso vertical shift in pixels (positive: down)
    blink: float = 0.0
    smile: float = 0.0


def pose_matrix(pose: Pose, pivot: tuple[float, float]) -> np.ndarray:
    """The 2x3 affine matrix mapping portrait coordinates of the head to frame coordinates."""
    matrix = cv2.getRotationMatrix2D(pivot, -pose.roll_deg, pose.scale)
    matrix[0, 2] += pose.dx
    matrix[1, 2] += pose.dy
    return matrix.astype(np.float64)


@dataclass(frozen=True, slots=True)
class MotionField:
    """Per-pixel weights of head motion (1 over the head) and torso breathing, precomputed once."""

    head: np.ndarray  # (H, W) float32
    torso: np.ndarray  # (H, W) float32
    pivot: tuple[float, float]


def motion_field(face: FaceLandmarks, region: MouthRegion, size: tuple[int, int]) -> MotionField:
    """Head weight 1 inside an ellipse around the face (and the whole mouth region), fading outside."""
    h, w = size
    x0, y0, x1, y1 = face.box
    fw, fh = float(x1 - x0), float(y1 - y0)
    centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 + 0.12 * fh])
    axes = np.array([0.95 * fw, 1.1 * fh])
    corners = np.array(
        [[region.x0, region.y0], [region.x1, region.y0], [region.x0, region.y1], [region.x1, region.y1]],
        float,
    )
    reach = float(np.max(np.hypot(*((corners - centre) / axes).T)))
    axes *= max(1.0, reach / 0.97)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    radius = np.hypot((gx - centre[0]) / axes[0], (gy - centre[1]) / axes[1])
    t = np.clip((radius - 1.0) / 0.9, 0.0, 1.0)
    head = (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)
    chin_y = float(face.points[8, 1])
    top, bottom = max(region.y1, chin_y + 0.5 * fh), chin_y + 1.3 * fh
    s = np.clip((gy - top) / max(bottom - top, 1.0), 0.0, 1.0)
    torso = (s * s * (3.0 - 2.0 * s) * (1.0 - head)).astype(np.float32)
    pivot = (float(face.points[8, 0]), chin_y + 0.35 * fh)
    return MotionField(head=head, torso=torso, pivot=pivot)


def render_pose(image: np.ndarray, field: MotionField, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """The portrait moved to ``pose``; returns (frame, 2x3 head matrix for the mouth anchor)."""
    matrix = pose_matrix(pose, field.pivot)
    inverse = cv2.invertAffineTransform(matrix)
    h, w = image.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    src_x = inverse[0, 0] * gx + inverse[0, 1] * gy + inverse[0, 2]
    src_y = inverse[1, 0] * gx + inverse[1, 1] * gy + inverse[1, 2]
    map_x = (gx + field.head * (src_x - gx)).astype(np.float32)
    map_y = (gy + field.head * (src_y - gy) - field.torso * pose.breath).astype(np.float32)
    frame = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return frame, matrix
