"""Head motion for the pack builder: the portrait's own pixels, warped (blinks: ``eyes``).

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

# ------------------------------------------------------------------------------------------- head


@dataclass(frozen=True, slots=True)
class Pose:
    """A head pose relative to the portrait: roll (degrees) about the neck pivot, shift, scale."""

    roll_deg: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    breath: float = 0.0  # torso vertical shift in pixels (positive: down)
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


NUDGE_FADE = 1.2  # the beat's weight falls from 1 to 0 between these radii of the face ellipse


def head_nudge(face: FaceLandmarks, size: tuple[int, int]) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """(box, weights) of what a speech beat moves: 1 over the face, fading out in a narrow ring.

    Much tighter than the build's head-motion field: a beat moves a pixel or two, which a ring a
    fifth of the face wide absorbs unseen, and the live nudge stays a small warp (about 15 % of a
    512x512 head-and-shoulders frame).
    """
    h, w = size
    x0, y0, x1, y1 = face.box
    fw, fh = float(x1 - x0), float(y1 - y0)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0 + 0.08 * fh
    ax, ay = 0.62 * fw, 0.8 * fh
    bx0, bx1 = int(max(0, np.floor(cx - NUDGE_FADE * ax))), int(min(w, np.ceil(cx + NUDGE_FADE * ax)))
    by0, by1 = int(max(0, np.floor(cy - NUDGE_FADE * ay))), int(min(h, np.ceil(cy + NUDGE_FADE * ay)))
    if bx1 <= bx0 or by1 <= by0:
        return (0, 0, 1, 1), np.zeros((1, 1), np.float32)
    gy, gx = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
    radius = np.hypot((gx - cx) / ax, (gy - cy) / ay)
    t = np.clip((NUDGE_FADE - radius) / (NUDGE_FADE - 1.0), 0.0, 1.0)
    return (bx0, by0, bx1, by1), (t * t * (3.0 - 2.0 * t)).astype(np.float32)
