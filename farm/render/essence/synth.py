"""Mouth-shape synthesis for the pack builder, from the person's own mouth in one portrait.

A shape is the portrait's mouth region warped so the rig's control points (``mouthrig``) land on
the shape's targets, with the opening between the inner lips painted by ``interior``. The warp is
two thin-plate splines that share every control point except the lips: the *upper* one honours
the upper lip and maps everything above the mouth line, the *lower* one honours the lower lip and
jaw and maps everything below it. Lips therefore meet along a sharp line when a shape closes them,
even in a portrait whose lips were apart (its teeth are folded away, not smeared), and open without
dragging the upper lip down with the jaw. Both splines hold the nose, the cheeks and the region's
border still, so a patch blends into any frame showing the same region under the same head pose.

A spline is evaluated exactly at every pixel of a small region; on a large one, at a grid of about
``SPLINE_NODES`` nodes across and interpolated bicubically between them (the warp is smooth: on the
sample portrait at 512 px the mapped positions move by at most ~0.2 px against the exact splines,
and the pack builds ~1.8x faster, the splines having been ~3/4 of a build).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from farm.render.essence import interior as mouth_interior
from farm.render.essence.bank import MouthShape
from farm.render.essence.mouthrig import MouthRig, mouth_rig, targets
from farm.render.landmarks import FaceLandmarks

SEAM_STRENGTH = 0.4  # darkening of the line where closed lips meet
SPLINE_NODES = 76  # grid nodes across a region's longer side; under twice this many pixels: exact


@dataclass(frozen=True, slots=True)
class MouthRegion:
    """The rectangle (portrait coordinates) every mouth patch covers, and its feathered mask."""

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


def _border_ring(h: int, w: int, per_side: int = 7) -> np.ndarray:
    xs = np.linspace(0, w - 1, per_side)
    ys = np.linspace(0, h - 1, per_side)
    ring = [(x, 0.0) for x in xs] + [(x, h - 1.0) for x in xs]
    ring += [(0.0, y) for y in ys[1:-1]] + [(w - 1.0, y) for y in ys[1:-1]]
    return np.array(ring, dtype=np.float64)


def _spline_nodes(
    h: int, w: int, origin: tuple[int, int], nodes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Rows, columns and portrait points of the coarse grid the splines are evaluated at, or None
    when the region is small enough to evaluate at every pixel. The grid keeps the region's edges."""
    step = max(h, w) // nodes if nodes > 0 else 0
    if step < 2:
        return None
    ys = np.unique(np.r_[np.arange(0, h, step), h - 1]).astype(np.float64)
    xs = np.unique(np.r_[np.arange(0, w, step), w - 1]).astype(np.float64)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    points = np.column_stack([gx.ravel() + origin[0], gy.ravel() + origin[1]])
    return ys, xs, points


def _polygon_alpha(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a polygon given in region coordinates."""
    h, w = shape
    sub = 4
    canvas = np.zeros((h * sub, w * sub), np.uint8)
    cv2.fillPoly(canvas, [np.round(points * sub).astype(np.int32)], 255, lineType=cv2.LINE_AA)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _line(curve: np.ndarray, u: np.ndarray) -> np.ndarray:
    order = np.argsort(curve[:, 0])
    return np.interp(u, curve[order, 0], curve[order, 1])


class MouthSynth:
    """Renders the mouth region of one portrait in any shape and smile level (build time only)."""

    def __init__(
        self,
        portrait: np.ndarray,
        face: FaceLandmarks,
        region: MouthRegion,
        *,
        cavity_rgb: tuple[float, float, float] | None = None,
        spline_nodes: int = SPLINE_NODES,
    ) -> None:
        """``cavity_rgb``: animals and drawings (fur or a line for lips): the colour their cavity and
        tongue are tinted from, and no teeth. Default: the person's own lip colour, with teeth.
        ``spline_nodes``: nodes across the coarse grid of a large region's splines; 0: every pixel."""
        self.portrait, self.region = portrait, region
        self.rig: MouthRig = mouth_rig(face)
        self.interior = mouth_interior.prepare(portrait, self.rig, cavity_rgb)
        h, w = region.shape
        gy, gx = np.mgrid[0:h, 0:w]
        self._grid = np.column_stack([gx.ravel() + region.x0, gy.ravel() + region.y0]).astype(np.float64)
        self._uv = self.rig.frame.to_frame(self._grid)
        self._nodes = _spline_nodes(h, w, (region.x0, region.y0), spline_nodes)
        lower = set(self.rig.inner_lower[1:-1]) | set(self.rig.outer_lower[1:-1])
        upper = set(self.rig.inner_upper[1:-1]) | set(self.rig.outer_upper[1:-1])
        every = range(len(self.rig.source))
        self._upper_ids = np.array([i for i in every if i not in lower], np.int64)
        self._lower_ids = np.array([i for i in every if i not in upper], np.int64)

    def render(self, shape: MouthShape, smile: float) -> np.ndarray:
        """The region showing ``shape`` at smile level ``smile``: (h, w, 3) uint8."""
        rig, region = self.rig, self.region
        h, w = region.shape
        dst_uv = targets(rig, shape, smile)
        dst = rig.image_points(dst_uv)
        src = rig.image_points(rig.source)
        mapped = self._two_layer_map(dst_uv, dst, src)
        maps = mapped.reshape(h, w, 2).astype(np.float32)
        patch = cv2.remap(
            self.portrait, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        return self._paint_opening(patch, shape, dst_uv, dst)

    def smile_image(self, smile: float) -> np.ndarray:
        """The whole portrait with the closed mouth at smile level ``smile`` (only the region changes)."""
        out = self.portrait.copy()
        r = self.region
        out[r.y0 : r.y1, r.x0 : r.x1] = self.render(MouthShape("closed", 0.0, 0.0), smile)
        return out

    # ------------------------------------------------------------------ warp
    def _spline(self, ids: np.ndarray, dst: np.ndarray, src: np.ndarray) -> np.ndarray:
        # Imported here: scipy.interpolate costs ~0.85 s of CPU to import, and only a pack build warps.
        from scipy.interpolate import RBFInterpolator, RectBivariateSpline

        region = self.region
        h, w = region.shape
        origin = np.array([region.x0, region.y0], np.float64)
        inside = [
            i
            for i in ids
            if region.x0 + 1 <= dst[i, 0] <= region.x1 - 2 and region.y0 + 1 <= dst[i, 1] <= region.y1 - 2
        ]
        ring = _border_ring(h, w) + origin
        targets_ = np.vstack([dst[inside], ring])
        sources = np.vstack([src[inside], ring])
        rbf = RBFInterpolator(targets_, sources - targets_, kernel="thin_plate_spline", smoothing=1e-4)
        if self._nodes is None:
            shift: np.ndarray = rbf(self._grid)
        else:
            ys, xs, points = self._nodes
            at_nodes = rbf(points).reshape(len(ys), len(xs), 2)
            rows, cols = np.arange(h), np.arange(w)
            shift = np.stack(
                [RectBivariateSpline(ys, xs, at_nodes[..., k])(rows, cols) for k in (0, 1)], axis=-1
            ).reshape(-1, 2)
        result: np.ndarray = self._grid + shift
        return result

    def _two_layer_map(self, dst_uv: np.ndarray, dst: np.ndarray, src: np.ndarray) -> np.ndarray:
        """Source pixel of every region pixel: the upper spline above the mouth line, the lower below."""
        rig = self.rig
        upper_map = self._spline(self._upper_ids, dst, src)
        lower_map = self._spline(self._lower_ids, dst, src)
        u, v = self._uv[:, 0], self._uv[:, 1]
        y_up = _line(dst_uv[rig.inner_upper], u)
        y_low = _line(dst_uv[rig.inner_lower], u)
        corners = dst_uv[[rig.inner_upper[0], rig.inner_upper[-1]]]
        line = (y_up + y_low) / 2.0
        beyond = np.clip(np.maximum(corners[0, 0] - u, u - corners[1, 0]) / rig.mouth_width, 0.0, None)
        soft = 0.7 + 2.5 * rig.mouth_width * beyond  # a sharp seam in the mouth, soft out on the cheeks
        weight = np.clip(0.5 + (line - v) / (2.0 * soft), 0.0, 1.0)[:, None]
        return weight * upper_map + (1.0 - weight) * lower_map

    # ------------------------------------------------------------------ opening
    def _paint_opening(
        self, patch: np.ndarray, shape: MouthShape, dst_uv: np.ndarray, dst: np.ndarray
    ) -> np.ndarray:
        rig, region = self.rig, self.region
        h, w = region.shape
        origin = np.array([region.x0, region.y0], np.float64)
        polygon = np.concatenate([dst[rig.inner_upper], dst[rig.inner_lower][::-1]]) - origin
        alpha = _polygon_alpha(polygon, (h, w)).reshape(-1)
        u = self._uv[:, 0]
        y_up = _line(dst_uv[rig.inner_upper], u)
        y_low = _line(dst_uv[rig.inner_lower], u)
        out = patch.reshape(-1, 3).astype(np.float32)
        inside = alpha > 0.0
        if inside.any():
            colour = mouth_interior.paint(
                self.interior, shape, self._grid[inside], self._uv[inside], (y_up[inside], y_low[inside])
            )
            colour = self._own_teeth(colour, inside, y_up, mouth_interior.teeth_light(shape))
            colour = mouth_interior.tongue_tip(self.interior, shape, colour, self._uv[inside])
            a = alpha[inside, None]
            out[inside] = out[inside] * (1.0 - a) + colour * a
        out = self._seam(out, dst_uv, y_up, y_low)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(h, w, 3)

    def _own_teeth(
        self, colour: np.ndarray, inside: np.ndarray, y_up: np.ndarray, light: float
    ) -> np.ndarray:
        """The portrait's own upper teeth, in place, above their edge."""
        own = self.interior.own_teeth
        if own is None:
            return colour
        r = self.region
        weight = own[r.y0 : r.y1, r.x0 : r.x1].reshape(-1)[inside]
        uv = self._uv[inside]
        weight = weight * np.clip(self.interior.edge(uv[:, 0]) - uv[:, 1] + 0.5, 0.0, 1.0)
        pixels = self.portrait[r.y0 : r.y1, r.x0 : r.x1].reshape(-1, 3)[inside].astype(np.float32)
        shadow = 1.0 - 0.25 * np.exp(
            -np.maximum(uv[:, 1] - y_up[inside], 0.0) / (0.02 * self.rig.mouth_width)
        )
        return colour * (1.0 - weight[:, None]) + pixels * (light * shadow)[:, None] * weight[:, None]

    def _seam(self, out: np.ndarray, dst_uv: np.ndarray, y_up: np.ndarray, y_low: np.ndarray) -> np.ndarray:
        """Darken the line where (nearly) closed lips meet, as real closed lips show one."""
        rig = self.rig
        u, v = self._uv[:, 0], self._uv[:, 1]
        gap = y_low - y_up
        corners = dst_uv[[rig.inner_upper[0], rig.inner_upper[-1]]]
        span = np.clip(np.minimum(u - corners[0, 0], corners[1, 0] - u) / (0.15 * rig.mouth_width), 0.0, 1.0)
        line = (y_up + y_low) / 2.0
        seam = SEAM_STRENGTH * np.exp(-(((v - line) / 0.7) ** 2)) * span * np.clip(1.0 - gap / 2.0, 0.0, 1.0)
        dark = self.interior.lip_rgb * 0.35
        return out * (1.0 - seam[:, None]) + dark * seam[:, None]
