"""The mouth's control points in one portrait, and where each mouth shape moves them.

Two sources, one vocabulary: the 478-point mesh for people (lip contours of 11 points each, chin
and jaw points, nose and cheek anchors), or the 68-point skeleton for animal mode (the lips of the
given mouth box). Positions are kept in a *mouth frame*: ``u`` along the line from the image-left
to the image-right mouth corner, ``v`` perpendicular to it towards the chin, origin midway between
the corners, so a tilted head opens its mouth along its own axis.

Every shape is defined relative to the **neutral closed mouth**: the portrait's own mouth with its
inner lips brought together (upper lip down by ``UPPER_SHARE`` of the gap, lower lip and jaw up by
the rest). A portrait smiling with open lips therefore still gets closed lips for silence and for
p, b, m; and openings mean the same on every portrait.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from farm.render.essence.bank import MouthShape
from farm.render.facerig import topology as topo
from farm.render.landmarks import FaceLandmarks

UPPER_SHARE = 0.35  # of a portrait's lip gap closed by the upper lip (the jaw closes the rest)
LOWER_LIP_DROP = 0.34  # lower-lip drop at full opening, mouth widths
UPPER_LIP_LIFT = 0.06  # inner upper-lip lift at full opening
CHIN_DROP = 0.3  # chin drop at full opening
TEETH_LIP_PART = 0.035  # extra lip parting of the teeth-showing shapes (s, ch, th, f)
PRESS_THIN = 0.3  # share of each lip's thickness rolled in when pressed

# Mesh points that move with the jaw and their share of the chin's drop (chin front and jaw line).
MESH_JAW: dict[int, float] = {
    18: 1.0, 200: 1.0, 199: 1.0, 175: 1.0, 152: 1.0, 83: 0.95, 313: 0.95, 182: 0.9, 406: 0.9,
    201: 0.9, 421: 0.9, 208: 0.85, 428: 0.85, 148: 0.85, 377: 0.85, 171: 0.8, 396: 0.8, 194: 0.75,
    418: 0.75, 140: 0.7, 369: 0.7, 176: 0.7, 400: 0.7, 32: 0.6, 262: 0.6, 149: 0.5, 378: 0.5,
    150: 0.3, 379: 0.3, 169: 0.3, 394: 0.3, 136: 0.15, 365: 0.15,
}  # fmt: skip
# Mesh points held still: under the nose, the nasolabial cheeks, the jaw angles.
MESH_ANCHORS = (2, 97, 326, 98, 327, 164, 167, 393, 165, 391, 206, 426, 216, 436, 207, 427, 187, 411,
                214, 434, 172, 397)  # fmt: skip
# Mesh points beside the mouth corners (the smile creases) and their share of the nearest corner's move.
MESH_CORNER_SKIN: dict[int, float] = {57: 0.45, 287: 0.45, 43: 0.3, 273: 0.3, 186: 0.3, 410: 0.3}
IBUG_JAW = {4: 0.08, 5: 0.3, 6: 0.6, 7: 0.85, 8: 1.0, 9: 0.85, 10: 0.6, 11: 0.3, 12: 0.08}
IBUG_ANCHORS = (31, 32, 33, 34, 35, 2, 3, 13, 14)


@dataclass(frozen=True, slots=True)
class MouthFrame:
    """Image <-> mouth-frame coordinates: origin between the corners, ``u`` along them, ``v`` chin-wards."""

    origin: np.ndarray  # (2,) image pixels
    axis_u: np.ndarray  # (2,) unit
    axis_v: np.ndarray  # (2,) unit, perpendicular, pointing down the face

    @classmethod
    def between(cls, left: np.ndarray, right: np.ndarray) -> MouthFrame:
        d = (right - left).astype(np.float64)
        u = d / max(float(np.linalg.norm(d)), 1e-6)
        return cls((left + right).astype(np.float64) / 2.0, u, np.array([-u[1], u[0]]))

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        rel = np.asarray(xy, np.float64) - self.origin
        return np.stack([rel @ self.axis_u, rel @ self.axis_v], axis=-1)

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, np.float64)
        return self.origin + uv[..., :1] * self.axis_u + uv[..., 1:2] * self.axis_v


@dataclass(frozen=True, slots=True)
class MouthRig:
    """Control points of one mouth in the mouth frame; index arrays name the curves.

    ``inner_upper``/``inner_lower`` share their two end points (the inner corners), as do
    ``outer_upper``/``outer_lower`` (the outer corners); all run from the image-left corner.
    """

    frame: MouthFrame
    source: np.ndarray  # (N, 2) the portrait's own positions (u, v)
    neutral: np.ndarray  # (N, 2) the neutral closed mouth
    inner_upper: np.ndarray
    inner_lower: np.ndarray
    outer_upper: np.ndarray
    outer_lower: np.ndarray
    jaw: np.ndarray  # indices of jaw-moving points
    jaw_share: np.ndarray  # their share of the chin drop
    anchors: np.ndarray  # indices of points held still
    corner_skin: np.ndarray  # indices of points that follow the nearest mouth corner
    corner_share: np.ndarray  # their share of its move
    mouth_width: float  # outer corner distance of the neutral mouth, pixels

    @property
    def closing(self) -> float:
        """How far the jaw rose to close the portrait's lips (pixels, at the mouth's middle)."""
        mid = len(self.inner_lower) // 2
        return float(self.source[self.inner_lower[mid], 1] - self.neutral[self.inner_lower[mid], 1])

    def image_points(self, uv: np.ndarray) -> np.ndarray:
        return self.frame.to_image(uv)


def _curve_ids(names: tuple[int, ...], index: dict[int, int]) -> np.ndarray:
    return np.array([index[n] for n in names], np.int64)


def mouth_rig(face: FaceLandmarks) -> MouthRig:
    """The rig of a detected face (mesh) or of an animal-mode skeleton (68 points)."""
    curves: tuple[tuple[int, ...], ...]
    jaw: dict[int, float]
    anchors: tuple[int, ...]
    skin: dict[int, float] = {}
    if face.mesh is not None:
        xy = face.mesh[:, :2].astype(np.float64)
        curves = (topo.LIPS_INNER_UPPER, topo.LIPS_INNER_LOWER, topo.LIPS_OUTER_UPPER, topo.LIPS_OUTER_LOWER)
        jaw, anchors, skin = MESH_JAW, MESH_ANCHORS, MESH_CORNER_SKIN
    else:
        xy = face.points.astype(np.float64)
        curves = (
            (60, 61, 62, 63, 64),
            (60, 67, 66, 65, 64),
            (48, 49, 50, 51, 52, 53, 54),
            (48, 59, 58, 57, 56, 55, 54),
        )
        jaw, anchors = IBUG_JAW, IBUG_ANCHORS
    names = sorted({n for c in curves for n in c} | set(jaw) | set(anchors) | set(skin))
    index = {n: i for i, n in enumerate(names)}
    outer_upper = _curve_ids(curves[2], index)
    frame = MouthFrame.between(xy[names[outer_upper[0]]], xy[names[outer_upper[-1]]])
    source = frame.to_frame(xy[names])
    ids = [_curve_ids(c, index) for c in curves]
    jaw_ids = _curve_ids(tuple(jaw), index)
    rig = MouthRig(
        frame=frame,
        source=source,
        neutral=source,
        inner_upper=ids[0],
        inner_lower=ids[1],
        outer_upper=ids[2],
        outer_lower=ids[3],
        jaw=jaw_ids,
        jaw_share=np.array(list(jaw.values()), np.float64),
        anchors=_curve_ids(anchors, index),
        corner_skin=_curve_ids(tuple(skin), index),
        corner_share=np.array(list(skin.values()), np.float64),
        mouth_width=float(source[outer_upper[-1], 0] - source[outer_upper[0], 0]),
    )
    return _with_neutral(rig)


def _along(u_from: np.ndarray, values: np.ndarray, u_at: np.ndarray) -> np.ndarray:
    order = np.argsort(u_from)
    return np.interp(u_at, u_from[order], values[order])


def _with_neutral(rig: MouthRig) -> MouthRig:
    """The rig with its ``neutral`` positions: inner lips met, outer lips and jaw following."""
    src = rig.source
    up, low = rig.inner_upper, rig.inner_lower
    gap = np.maximum(src[low, 1] - src[up, 1], 0.0)  # per column (same u order, shared corners)
    u_cols = (src[up, 0] + src[low, 0]) / 2.0
    neutral = src.copy()
    neutral[up, 1] += UPPER_SHARE * gap
    neutral[low, 1] -= (1.0 - UPPER_SHARE) * gap
    neutral[rig.outer_upper, 1] += _along(u_cols, UPPER_SHARE * gap, src[rig.outer_upper, 0])
    neutral[rig.outer_lower, 1] -= _along(u_cols, (1.0 - UPPER_SHARE) * gap, src[rig.outer_lower, 0])
    mid_gap = float(gap[len(gap) // 2])
    neutral[rig.jaw, 1] -= (1.0 - UPPER_SHARE) * mid_gap * rig.jaw_share
    return _replace_neutral(rig, neutral)


def _replace_neutral(rig: MouthRig, neutral: np.ndarray) -> MouthRig:
    from dataclasses import replace

    return replace(rig, neutral=neutral)


def _profile(u: np.ndarray, half_width: float, power: float) -> np.ndarray:
    x = np.clip(u / max(half_width, 1e-6), -1.0, 1.0)
    return np.power(np.maximum(0.0, 1.0 - x * x), power)


def _curve_profile(n: np.ndarray, ids: np.ndarray, power: float) -> np.ndarray:
    """The profile along one lip curve (without its corners), 0 at its own corners, 1 midway."""
    left, right = n[ids[0], 0], n[ids[-1], 0]
    centre, half = (left + right) / 2.0, (right - left) / 2.0
    return _profile(n[ids[1:-1], 0] - centre, half, power)


def lip_thickness(rig: MouthRig) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower) lip thickness of the neutral mouth at each outer upper/lower point."""
    n = rig.neutral
    inner_up = _along(n[rig.inner_upper, 0], n[rig.inner_upper, 1], n[rig.outer_upper, 0])
    inner_low = _along(n[rig.inner_lower, 0], n[rig.inner_lower, 1], n[rig.outer_lower, 0])
    return np.maximum(inner_up - n[rig.outer_upper, 1], 0.0), np.maximum(
        n[rig.outer_lower, 1] - inner_low, 0.0
    )


def scale_x(shape: MouthShape, smile: float) -> float:
    """Horizontal lip scale: spread widens, rounding purses in, a smile widens a little."""
    k = shape.width
    return 1.0 + (0.2 * k if k > 0 else 0.32 * k) + 0.1 * smile


def jaw_drop(shape: MouthShape, rig: MouthRig) -> float:
    """How far the chin (and the lower teeth) drop for a shape, pixels."""
    return CHIN_DROP * shape.open * rig.mouth_width


def targets(rig: MouthRig, shape: MouthShape, smile: float) -> np.ndarray:
    """(N, 2) mouth-frame positions of every control point for ``shape`` at smile level ``smile``."""
    n = rig.neutral
    dst = n.copy()
    mw, half = rig.mouth_width, rig.mouth_width / 2.0
    o, k = shape.open, shape.width
    power = 0.6 if k < 0 else 1.0  # an oval when rounded, an almond with pointed corners otherwise
    lips = np.unique(np.concatenate([rig.inner_upper, rig.inner_lower, rig.outer_upper, rig.outer_lower]))
    dst[lips, 0] = n[lips, 0] * scale_x(shape, smile)
    part = TEETH_LIP_PART * mw * (1.0 if shape.teeth else 0.0)
    purse = max(0.0, -k) * 0.04 * mw
    thick_up, thick_low = lip_thickness(rig)
    arch = 0.1 * max(0.0, -k) * o * mw  # a rounded opening arches the upper lip: an O, not a slot
    for ids, lift in (
        (rig.inner_upper, UPPER_LIP_LIFT * o * mw + part + arch),
        (rig.outer_upper, 0.05 * o * mw + purse),
    ):
        dst[ids[1:-1], 1] -= lift * _curve_profile(n, ids, power)
    lower_drop = LOWER_LIP_DROP * o * mw + part
    for ids, extra in ((rig.inner_lower, 0.0), (rig.outer_lower, purse)):
        dst[ids[1:-1], 1] += (lower_drop + extra) * _curve_profile(n, ids, power)
    if shape.press:
        dst[rig.outer_upper, 1] += PRESS_THIN * shape.press * thick_up
        dst[rig.outer_lower, 1] -= PRESS_THIN * shape.press * thick_low
    if shape.tuck:  # the lower lip rolls in under the upper teeth: thinner, its top at the teeth's edge
        dst[rig.outer_lower, 1] -= 0.45 * shape.tuck * thick_low * _profile(n[rig.outer_lower, 0], half, 0.5)
        dst[rig.inner_lower[1:-1], 1] -= 0.6 * part * _curve_profile(n, rig.inner_lower, 0.5)
    corners = [rig.inner_upper[0], rig.inner_upper[-1], rig.outer_upper[0], rig.outer_upper[-1]]
    dst[corners, 1] += 0.04 * o * mw - 0.11 * smile * mw
    near = [rig.outer_upper[1], rig.outer_upper[-2]]
    dst[near, 1] -= 0.04 * smile * mw
    dst[rig.jaw, 1] += jaw_drop(shape, rig) * rig.jaw_share
    if len(rig.corner_skin):  # the creases beside the corners follow them (rounding, spreading, smiling)
        left, right = rig.outer_upper[0], rig.outer_upper[-1]
        move = np.where((n[rig.corner_skin, 0] < 0)[:, None], dst[left] - n[left], dst[right] - n[right])
        dst[rig.corner_skin] += move * rig.corner_share[:, None]
    return dst


def measured(rig: MouthRig, shape: MouthShape, smile: float = 0.0) -> MouthShape:
    """``shape`` with its ``gap`` and ``span`` measured on its targets (in neutral mouth widths)."""
    from dataclasses import replace

    dst = targets(rig, shape, smile)
    gap = float(np.mean(dst[rig.inner_lower[1:-1], 1] - dst[rig.inner_upper[1:-1], 1]))
    span = float(dst[rig.outer_upper[-1], 0] - dst[rig.outer_upper[0], 0])
    return replace(shape, gap=max(0.0, gap) / rig.mouth_width, span=span / rig.mouth_width)
