"""Mouth-shape synthesis for the pack builder, from the person's own mouth in one portrait.

Everything here warps the person's own pixels; nothing is drawn from a template except the mouth
interior (a dark cavity with a hint of teeth) that an open mouth reveals.

* Mouth shapes: a thin-plate-spline warp driven by the 68 landmarks (lips and jaw moved to the
  shape's targets; nose and the border of the mouth region held still), then the target inner-lip
  polygon is filled with the cavity. The warp vanishes at the region border, so a patch blends into
  any frame that shows the same mouth region under the same affine head pose.
Blinks and head motion live in ``farm.render.essence.head``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from farm.render.landmarks import FaceLandmarks

# jaw point index -> share of the chin drop (the jaw opens as a hinge, the chin moves most)
_JAW_DROP = {4: 0.08, 5: 0.3, 6: 0.6, 7: 0.85, 8: 1.0, 9: 0.85, 10: 0.6, 11: 0.3, 12: 0.08}
_UPPER_OUTER = (49, 50, 51, 52, 53)
_LOWER_OUTER = (55, 56, 57, 58, 59)
_UPPER_INNER = (61, 62, 63)
_LOWER_INNER = (65, 66, 67)


@dataclass(frozen=True, slots=True)
class MouthShape:
    """One entry of the shape bank: openness 0..1, width -1 (round) .. +1 (wide), smile 0..1."""

    name: str
    open: float
    width: float


@dataclass(frozen=True, slots=True)
class MouthRegion:
    """The rectangle (reference coordinates) every mouth patch covers, and its feathered mask."""

    x0: int
    y0: int
    x1: int
    y1: int
    mask: np.ndarray  # (h, w) float32 0..1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)


def mouth_region(face: FaceLandmarks, image_size: tuple[int, int]) -> MouthRegion:
    """The mouth region: from just under the nose to below the chin, about two mouth widths wide."""
    height, width = image_size
    mw = face.mouth_width
    cx = float(face.mouth_center[0])
    chin_y = float(face.points[8, 1])
    nose_y = float(face.points[33, 1])
    x0 = int(np.floor(max(0.0, cx - 1.15 * mw)))
    x1 = int(np.ceil(min(float(width), cx + 1.15 * mw)))
    y0 = int(np.floor(max(0.0, nose_y + 0.05 * (face.mouth_center[1] - nose_y))))
    y1 = int(np.ceil(min(float(height), chin_y + 0.85 * mw)))
    return MouthRegion(x0, y0, x1, y1, _feather((y1 - y0, x1 - x0), face, (x0, y0)))


def _feather(shape: tuple[int, int], face: FaceLandmarks, origin: tuple[int, int]) -> np.ndarray:
    """A soft mask: 1 over the lips and jaw, a raised-cosine fade to 0 at the region border."""
    h, w = shape
    ramp_x = max(2, int(0.22 * w))
    ramp_y_top = max(2, int(0.3 * (face.mouth_center[1] - origin[1])))
    ramp_y_bottom = max(2, int(0.25 * h))

    def ramp(n: int, lo: int, hi: int) -> np.ndarray:
        idx = np.arange(n, dtype=np.float32)
        up = np.clip(idx / lo, 0.0, 1.0)
        down = np.clip((n - 1 - idx) / hi, 0.0, 1.0)
        return (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))).astype(np.float32)

    return np.outer(ramp(h, ramp_y_top, ramp_y_bottom), ramp(w, ramp_x, ramp_x)).astype(np.float32)


def _lip_profile(points: np.ndarray, cx: float, half_width: float, power: float) -> np.ndarray:
    u = np.clip((points[:, 0] - cx) / half_width, -1.0, 1.0)
    return np.power(np.maximum(0.0, 1.0 - u * u), power)


def _scale_x(shape: MouthShape, smile: float) -> float:
    """Horizontal lip scale: wide stretches sideways, round purses in, a smile widens a little."""
    k = shape.width
    return 1.0 + (0.2 * k if k > 0 else 0.32 * k) + 0.1 * smile


def shape_targets(face: FaceLandmarks, shape: MouthShape, smile: float) -> np.ndarray:
    """Where the 68 landmarks go for a mouth shape (only lips and jaw move)."""
    src = face.points.astype(np.float64)
    dst = src.copy()
    mw = face.mouth_width
    cx, _cy = (float(v) for v in face.mouth_center)
    k, o = shape.width, shape.open
    # width: wide stretches the lips sideways, round purses them in and pushes them out a little
    scale_x = _scale_x(shape, smile)
    lips = np.arange(48, 68)
    dst[lips, 0] = cx + (src[lips, 0] - cx) * scale_x
    purse = max(0.0, -k) * 0.04 * mw
    power = 0.35 if k < 0 else 0.7
    up_in = list(_UPPER_INNER)
    low_in = list(_LOWER_INNER)
    dst[list(_UPPER_OUTER), 1] -= (0.05 * o * mw + purse) * _lip_profile(
        src[list(_UPPER_OUTER)], cx, mw / 2, power
    )
    dst[up_in, 1] -= 0.06 * o * mw * _lip_profile(src[up_in], cx, mw / 2, power)
    drop_lower = 0.34 * o * mw
    dst[list(_LOWER_OUTER), 1] += (drop_lower + purse) * _lip_profile(
        src[list(_LOWER_OUTER)], cx, mw / 2, power
    )
    dst[low_in, 1] += drop_lower * _lip_profile(src[low_in], cx, mw / 2, power)
    # corners: drop a little with the jaw, rise with a smile
    for corner in (48, 54, 60, 64):
        dst[corner, 1] += 0.04 * o * mw - 0.11 * smile * mw
    dst[[49, 53], 1] -= 0.04 * smile * mw
    chin_drop = 0.3 * o * mw
    for idx, share in _JAW_DROP.items():
        dst[idx, 1] += chin_drop * share
    return dst.astype(np.float32)


def _border_ring(h: int, w: int, per_side: int = 7) -> np.ndarray:
    xs = np.linspace(0, w - 1, per_side)
    ys = np.linspace(0, h - 1, per_side)
    ring = [(x, 0.0) for x in xs] + [(x, h - 1.0) for x in xs]
    ring += [(0.0, y) for y in ys[1:-1]] + [(w - 1.0, y) for y in ys[1:-1]]
    return np.array(ring, dtype=np.float64)


def _control_indices(region: MouthRegion, points: np.ndarray) -> list[int]:
    keep = list(range(48, 68)) + list(_JAW_DROP) + [31, 32, 33, 34, 35, 2, 3, 13, 14]
    inside = [
        i
        for i in keep
        if region.x0 + 1 <= points[i, 0] <= region.x1 - 2 and region.y0 + 1 <= points[i, 1] <= region.y1 - 2
    ]
    return sorted(set(inside))


def warp_region(image: np.ndarray, region: MouthRegion, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The region of ``image`` warped so landmarks ``src`` land on ``dst`` (border held still)."""
    h, w = region.shape
    origin = np.array([region.x0, region.y0], dtype=np.float64)
    idx = _control_indices(region, src)
    ring = _border_ring(h, w)
    targets = np.vstack([dst[idx] - origin, ring])
    sources = np.vstack([src[idx] - origin, ring])
    rbf = RBFInterpolator(targets, sources - targets, kernel="thin_plate_spline", smoothing=1e-3)
    gy, gx = np.mgrid[0:h, 0:w]
    grid = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float64)
    mapped = grid + rbf(grid)
    map_x = (mapped[:, 0] + origin[0]).reshape(h, w).astype(np.float32)
    map_y = (mapped[:, 1] + origin[1]).reshape(h, w).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _lip_colour(image: np.ndarray, face: FaceLandmarks) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(face.points[48:60]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(face.points[60:68]).astype(np.int32)], 0)
    if mask.sum() == 0:
        return np.array([150.0, 80.0, 80.0], np.float32)
    return image[mask.astype(bool)].mean(axis=0).astype(np.float32)


def _polygon_alpha(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a polygon given in region coordinates."""
    h, w = shape
    sub = 4
    canvas = np.zeros((h * sub, w * sub), np.uint8)
    cv2.fillPoly(canvas, [np.round(points * sub).astype(np.int32)], 255, lineType=cv2.LINE_AA)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _paint_teeth(
    colour: np.ndarray,
    *,
    ys: np.ndarray,
    y_up: np.ndarray,
    gap: np.ndarray,
    across: np.ndarray,
    dx: np.ndarray,
    mouth_width: float,
) -> np.ndarray:
    """Upper teeth: a soft off-white band under the upper lip, narrower than the mouth."""
    band = np.minimum(0.09 * mouth_width, 0.4 * gap)[None, :]
    inside = (ys - y_up[None, :]) / np.maximum(band, 1e-3)
    width = np.clip(1.0 - (dx / (0.38 * mouth_width)) ** 4, 0.0, 1.0)[None, :]
    alpha = (np.clip(2.5 - 2.2 * inside, 0.0, 1.0) * (inside >= -0.1) * width)[..., None]
    shade = (1.0 - 0.12 * np.clip(inside, 0.0, 1.0))[..., None]
    teeth = np.array([238.0, 232.0, 220.0], np.float32) * (1.0 - 0.25 * across) * shade
    return colour * (1.0 - alpha) + teeth * alpha


def _lip_line(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


@dataclass(frozen=True, slots=True)
class _Interior:
    """What an open mouth shows: the portrait's own interior carried with the upper lip, else cavity."""

    image: np.ndarray
    src_inner: np.ndarray  # (8, 2) source inner lips, image coordinates
    lip_rgb: np.ndarray
    mouth_width: float
    teeth: bool = True  # paint teeth when the portrait's mouth is closed (people; not animals)


def paint_interior(
    patch: np.ndarray, region: MouthRegion, inner: np.ndarray, interior: _Interior, scale_x: float
) -> np.ndarray:
    """Fill the target inner-lip polygon: the portrait's interior (teeth) moves with the upper lip;
    what it does not cover is a shaded cavity with a tongue hint at the bottom."""
    h, w = region.shape
    origin = np.array([region.x0, region.y0], np.float32)
    pts = inner - origin
    alpha = _polygon_alpha(pts, (h, w))
    if alpha.max() < 0.05:
        return patch
    src = interior.src_inner - origin
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    y_up = _lip_line(pts[[0, 1, 2, 3, 4]], xs)
    y_low = _lip_line(pts[[4, 5, 6, 7, 0]], xs)
    cx = float(src[:, 0].mean())
    src_x = cx + (xs - cx) / scale_x
    lift = _lip_line(src[[0, 1, 2, 3, 4]], src_x) - y_up  # how far the upper lip moved up
    map_x = np.broadcast_to(src_x[None, :] + origin[0], (h, w)).astype(np.float32)
    map_y = (ys + lift[None, :] + origin[1]).astype(np.float32)
    carried = cv2.remap(interior.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    src_alpha_full = np.zeros(interior.image.shape[:2], np.float32)
    src_alpha_full[region.y0 : region.y1, region.x0 : region.x1] = _polygon_alpha(src, (h, w))
    carried_alpha = cv2.remap(src_alpha_full, map_x, map_y, cv2.INTER_LINEAR)[..., None]
    gap = np.maximum(y_low - y_up, 1e-3)
    depth = np.clip((ys - y_up[None, :]) / gap[None, :], 0.0, 1.0)[..., None]
    across = np.clip(np.abs(xs - cx) / (0.5 * interior.mouth_width), 0.0, 1.0)[None, :, None]
    lip = interior.lip_rgb[None, None, :]
    dark = 0.2 * lip + np.array([20.0, 3.0, 5.0], np.float32)
    cavity = dark * (0.7 + 0.4 * depth) * (1.0 - 0.45 * across)
    opening = np.clip(gap / (0.25 * interior.mouth_width), 0.0, 1.0)[None, :, None]
    tongue = np.clip((depth - 0.5) / 0.5, 0.0, 1.0) * opening * (1.0 - across)
    tongue_rgb = lip * np.array([0.72, 0.42, 0.45], np.float32)
    synthetic = cavity * (1.0 - 0.7 * tongue) + tongue_rgb * 0.7 * tongue
    closed = (
        _polygon_area(src) < 0.015 * interior.mouth_width**2
    )  # lips closed in the portrait: no teeth to carry
    if closed and interior.teeth:
        synthetic = _paint_teeth(
            synthetic,
            ys=ys,
            y_up=y_up,
            gap=gap,
            across=across,
            dx=np.abs(xs - cx),
            mouth_width=interior.mouth_width,
        )
    colour = carried.astype(np.float32) * carried_alpha + synthetic * (1.0 - carried_alpha)
    a = alpha[..., None]
    out = patch.astype(np.float32) * (1.0 - a) + colour * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def render_mouth(
    image: np.ndarray,
    face: FaceLandmarks,
    region: MouthRegion,
    shape: MouthShape,
    smile: float,
    *,
    inside_rgb: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """The mouth region of ``image`` showing ``shape`` (at smile level ``smile``), (h, w, 3) uint8.

    ``inside_rgb``: colour the cavity and tongue are tinted from, with no painted teeth (animals and
    drawings, whose "lips" are fur or a line); default: the person's own lip colour, with teeth.
    """
    dst = shape_targets(face, shape, smile)
    patch = warp_region(image, region, face.points, dst)
    lip = _lip_colour(image, face) if inside_rgb is None else np.array(inside_rgb, np.float32)
    interior = _Interior(image, face.points[60:68], lip, face.mouth_width, teeth=inside_rgb is None)
    return paint_interior(patch, region, dst[60:68], interior, _scale_x(shape, smile))


def smile_image(image: np.ndarray, face: FaceLandmarks, region: MouthRegion, smile: float) -> np.ndarray:
    """The whole image with a closed-mouth smile of strength ``smile`` (only the mouth region changes)."""
    out = image.copy()
    closed = MouthShape("closed", 0.0, 0.0)
    out[region.y0 : region.y1, region.x0 : region.x1] = render_mouth(image, face, region, closed, smile)
    return out
