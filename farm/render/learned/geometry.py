"""Geometry of the learned renderer: the LivePortrait face crop, implicit keypoints, and paste-back.

**Crop convention.** The renderer was trained on LivePortrait crops: a square of side
``max(w, h) × 2.3`` around the face landmarks, measured in a frame aligned with the face (x axis
perpendicular to the eye→lip line, y axis along it), shifted along that line by ``-0.125 × side``
(upwards, so hair fits), rotated upright, resampled to 512×512 (bilinear, zero border) and then
shrunk to 256×256 (area) for the extractors. LivePortrait measures it on InsightFace's 106 points and
Ditto on LivePortrait's 203; the farm measures it on its own rig's 68 iBUG points
(``farm.render.landmarks.detect_face``), mapped as follows:

* eye centres: mean of the six contour points of each eye (36-41, 42-47), where the reference takes
  four lid points per eye: the same centres within a pixel or two;
* lip centre: mean of the outer and inner lip midpoints (51, 57, 62, 66), where the reference takes
  one upper and one lower lip midpoint;
* the box: the bounding box of all 68 points in the aligned frame (jaw 0-16 to the brows 17-26),
  which spans the same ear-to-chin, brow-to-chin extent as the reference sets' contour and brow
  points (the 106-point contour reaches a little higher at the temples, so the farm's side can be a
  few percent smaller).

A rig that keeps ``detect_face``'s 68-index API (the MediaPipe face mesh mapped to iBUG indices)
keeps this mapping unchanged. ``vx_ratio`` is not applied, as in the reference (its crop function
never forwards it).

**Keypoints** follow LivePortrait's Eq. 2: x = scale · (kp · R + exp) + t, with R = (Rz·Ry·Rx)ᵀ from
pitch, yaw, roll in degrees (row-vector convention) and the depth translation dropped.

**Paste-back.** A session's frame is a square ``size``×``size`` canvas of the original image centred
on the crop (``CANVAS_SCALE`` × the crop's side, upright); the 512 render is warped into it with the
inverse crop transform and blended through a mask that is 1 inside the crop and ramps to 0 over its
outer ``MASK_RAMP`` (5 %) on every side, so the face's edges dissolve into the original picture.
The per-avatar part (background, sampling grid, mask) is computed once; per frame it is one bilinear
sample and a blend, batched on the device (``graphs.TorchGraphs.paste_back``) or on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CROP_SIZE = 512
CROP_SCALE = 2.3
CROP_VY_RATIO = -0.125
CANVAS_SCALE = 1.25
MASK_RAMP = 0.05
GEOMETRY_VERSION = 1  # bump when anything above changes (avatar caches are keyed by it)

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
LIP_MIDPOINTS = (51, 57, 62, 66)


@dataclass(frozen=True, slots=True)
class Crop:
    """A similarity transform from image pixels to the 512 crop (pixel-centre coordinates)."""

    matrix: np.ndarray  # (2, 3) float64: crop = matrix @ [x, y, 1]
    centre: np.ndarray  # (2,) crop centre in image pixels
    side: float  # crop side in image pixels

    def inverse(self) -> np.ndarray:
        """(2, 3) transform from crop pixels back to image pixels."""
        rot = self.matrix[:, :2]
        inv = np.linalg.inv(rot)
        return np.hstack([inv, (-inv @ self.matrix[:, 2])[:, None]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def liveportrait_crop(
    points: np.ndarray, *, size: int = CROP_SIZE, scale: float = CROP_SCALE, vy_ratio: float = CROP_VY_RATIO
) -> Crop:
    """The LivePortrait crop of a face given its 68 iBUG landmarks (image pixels)."""
    pts = np.asarray(points, np.float64)
    eye = (pts[LEFT_EYE].mean(0) + pts[RIGHT_EYE].mean(0)) / 2
    lip = pts[list(LIP_MIDPOINTS)].mean(0)
    uy = _unit(lip - eye)  # down the face
    ux = np.array([uy[1], -uy[0]])  # across the face, image-left eye to image-right eye
    axes = np.stack([ux, uy])  # rows: the aligned frame's axes in image coordinates
    mean = pts.mean(0)
    aligned = (pts - mean) @ axes.T
    lo, hi = aligned.min(0), aligned.max(0)
    side = float((hi - lo).max()) * scale
    mid = (lo + hi) / 2
    centre = mean + axes.T @ mid + uy * (vy_ratio * side)
    s = size / side
    rot = s * axes
    offset = np.array([size / 2, size / 2]) - rot @ centre  # the face centre lands mid-crop
    matrix = np.hstack([rot, offset[:, None]])
    return Crop(matrix=matrix, centre=centre, side=side)


def crop_image(image_rgb: np.ndarray, crop: Crop, size: int = CROP_SIZE) -> np.ndarray:
    """The (size, size, 3) uint8 crop: bilinear, zero outside the image (the reference's border)."""
    import cv2

    return cv2.warpAffine(
        np.ascontiguousarray(image_rgb), crop.matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0
    )


def extractor_input(crop_512: np.ndarray, image_size: int) -> np.ndarray:
    """(1, 3, S, S) float32 in [0, 1]: the 512 crop shrunk by area averaging, NCHW."""
    import cv2

    small = cv2.resize(crop_512, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)


# ------------------------------------------------------------------ implicit keypoints
def rotation_matrices(pitch_deg: np.ndarray, yaw_deg: np.ndarray, roll_deg: np.ndarray) -> np.ndarray:
    """(B, 3, 3) R = (Rz(roll) · Ry(yaw) · Rx(pitch))ᵀ, for row vectors (kp · R)."""
    p, y, r = (np.radians(np.asarray(a, np.float64).reshape(-1)) for a in (pitch_deg, yaw_deg, roll_deg))
    one, zero = np.ones_like(p), np.zeros_like(p)
    rx = np.stack([one, zero, zero, zero, np.cos(p), -np.sin(p), zero, np.sin(p), np.cos(p)], 1).reshape(
        -1, 3, 3
    )
    ry = np.stack([np.cos(y), zero, np.sin(y), zero, one, zero, -np.sin(y), zero, np.cos(y)], 1).reshape(
        -1, 3, 3
    )
    rz = np.stack([np.cos(r), -np.sin(r), zero, np.sin(r), np.cos(r), zero, zero, zero, one], 1).reshape(
        -1, 3, 3
    )
    return np.transpose(rz @ ry @ rx, (0, 2, 1))


def transform_keypoints(
    kp: np.ndarray, pose_deg: tuple[float, float, float], t: np.ndarray, exp: np.ndarray, scale: float
) -> np.ndarray:
    """(21, 3) float32 x = scale · (kp · R + exp) + (t_x, t_y, 0); ``pose_deg`` = (pitch, yaw, roll)."""
    pitch, yaw, roll = pose_deg
    rot = rotation_matrices(np.array([pitch]), np.array([yaw]), np.array([roll]))[0]
    points = scale * (kp.reshape(-1, 3) @ rot + exp.reshape(-1, 3))
    shift = np.array([t[0], t[1], 0.0])
    return (points + shift).astype(np.float32)


# ------------------------------------------------------------------ paste-back
@dataclass(frozen=True, slots=True)
class Canvas:
    """The per-avatar half of paste-back for a ``size``×``size`` output frame."""

    background: np.ndarray  # (S, S, 3) uint8: the original image around the face
    grid: np.ndarray  # (S, S, 2) float32: where each canvas pixel samples the 512 render, in [-1, 1]
    mask: np.ndarray  # (S, S) float32: blend weight of the render

    @property
    def size(self) -> int:
        return int(self.background.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.background.nbytes + self.grid.nbytes + self.mask.nbytes)


def render_mask(coords_px: np.ndarray, size: int = CROP_SIZE, ramp: float = MASK_RAMP) -> np.ndarray:
    """Blend weight at crop-pixel coordinates: 1 inside, linear to 0 over the outer ``ramp`` of each side."""
    width = ramp * size
    edge = np.minimum(coords_px + 0.5, size - (coords_px + 0.5))  # distance to the nearest border
    per_axis = np.clip(edge / width, 0.0, 1.0)
    return (per_axis[..., 0] * per_axis[..., 1]).astype(np.float32)


def canvas_transform(crop: Crop, size: int, canvas_scale: float = CANVAS_SCALE) -> np.ndarray:
    """(2, 3) image pixels → canvas pixels: an upright square of ``canvas_scale × crop side``."""
    s = size / (crop.side * canvas_scale)
    cx, cy = crop.centre
    return np.array([[s, 0.0, size / 2 - 0.5 - s * cx], [0.0, s, size / 2 - 0.5 - s * cy]])


def canvas_geometry(
    crop: Crop, size: int, canvas_scale: float = CANVAS_SCALE
) -> tuple[np.ndarray, np.ndarray]:
    """(grid, mask) of the canvas: for each canvas pixel, its place in the render and its blend weight."""
    to_canvas = canvas_transform(crop, size, canvas_scale)
    inv = np.linalg.inv(to_canvas[:, :2])
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    canvas_px = np.stack([xs, ys], -1)
    image_px = (canvas_px - to_canvas[:, 2]) @ inv.T
    crop_px = image_px @ crop.matrix[:, :2].T + crop.matrix[:, 2]
    grid = (2 * crop_px + 1) / CROP_SIZE - 1  # grid_sample units, align_corners=False
    return grid.astype(np.float32), render_mask(crop_px)


def make_canvas(image_rgb: np.ndarray, crop: Crop, size: int, canvas_scale: float = CANVAS_SCALE) -> Canvas:
    import cv2

    to_canvas = canvas_transform(crop, size, canvas_scale)
    background = cv2.warpAffine(
        np.ascontiguousarray(image_rgb),
        to_canvas,
        (size, size),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )
    grid, mask = canvas_geometry(crop, size, canvas_scale)
    return Canvas(background=background, grid=grid, mask=mask)


def paste_back_host(render: np.ndarray, canvas: Canvas) -> np.ndarray:
    """One (3, 512, 512) float render in [0, 1] pasted into its canvas: (S, S, 3) uint8 (OpenCV)."""
    import cv2

    hwc = np.ascontiguousarray(np.transpose(render, (1, 2, 0)).astype(np.float32))
    px = ((canvas.grid + 1) * CROP_SIZE - 1) / 2
    sampled = cv2.remap(
        hwc, px[..., 0], px[..., 1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    mask = canvas.mask[..., None]
    out = mask * sampled * 255.0 + (1 - mask) * canvas.background.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
