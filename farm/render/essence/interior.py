"""What an open mouth shows: upper teeth fixed to the skull, lower teeth and tongue on the jaw, cavity.

Every element hangs on the rig's geometry, never on the shape being drawn, so the interior is the
same picture from one shape to the next and only the lips and jaw uncover more or less of it (no
flicker when the renderer switches shapes):

* **Upper teeth** do not move: their edge is a fixed curve just under the neutral lip line
  (``TEETH_EDGE``, curving up towards the corners). Where the portrait itself shows its upper teeth,
  those pixels are used in place (the edge is then read from the portrait); elsewhere they are
  painted in the portrait's own teeth colour, or an off-white scaled to the face's light.
* **Lower teeth and tongue** ride on the jaw: they drop with the shape's jaw drop, the lower teeth
  in shadow behind the lower lip, the tongue below them.
* **Cavity**: a dark tint of the lip colour, darker towards the back and the corners.
* The **tongue tip** of ``th`` lies between the teeth.

Animals and drawings get a cavity and tongue in a given colour and no teeth.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from farm.render.essence.bank import MouthShape
from farm.render.essence.mouthrig import MouthRig, jaw_drop

TEETH_EDGE = 0.03  # upper-teeth edge below the neutral lip line at the middle, mouth widths
TEETH_ARCH = 0.12  # how far the edge curves up at the mouth corners, mouth widths
UPPER_TEETH_HALF = 0.38  # half width of the visible upper teeth, mouth widths
LOWER_TEETH_HALF = 0.36
LOWER_TEETH_HEIGHT = 0.07
DEFAULT_TEETH_RGB = np.array([228.0, 216.0, 192.0], np.float32)  # warm ivory, in the mouth's shade


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True, slots=True)
class Interior:
    """The fixed parts of one portrait's mouth interior, prepared once per pack."""

    rig: MouthRig
    lip_rgb: np.ndarray  # (3,) float32
    cavity_rgb: np.ndarray | None  # animal mode: the colour cavity and tongue are tinted from
    teeth_rgb: np.ndarray  # (3,) float32
    teeth_edge: np.ndarray  # (K, 2) (u, edge v) samples of the upper teeth's edge, mouth frame
    portrait: np.ndarray  # (H, W, 3) uint8, the portrait (its own teeth are read from it)
    own_teeth: np.ndarray | None  # (H, W) float32 0..1: where the portrait shows its upper teeth

    @property
    def teeth(self) -> bool:
        return self.cavity_rgb is None

    def neutral_line(self, u: np.ndarray) -> np.ndarray:
        n = self.rig.neutral
        up = self.rig.inner_upper
        return np.interp(u, n[up, 0], n[up, 1])

    def edge(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.teeth_edge[:, 0], self.teeth_edge[:, 1])


def lip_colour(portrait: np.ndarray, rig: MouthRig) -> np.ndarray:
    """Mean colour of the lips (between the outer and inner lip contours) in the portrait."""
    src = rig.image_points(rig.source)
    outer = np.concatenate([src[rig.outer_upper], src[rig.outer_lower][::-1]])
    inner = np.concatenate([src[rig.inner_upper], src[rig.inner_lower][::-1]])
    mask = np.zeros(portrait.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(outer).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(inner).astype(np.int32)], 0)
    if mask.sum() < 4:
        return np.array([150.0, 80.0, 80.0], np.float32)
    return portrait[mask.astype(bool)].mean(axis=0).astype(np.float32)


def _synthetic_edge(rig: MouthRig) -> np.ndarray:
    half = rig.mouth_width / 2.0
    u = np.linspace(-1.2 * half, 1.2 * half, 49)
    n = np.interp(u, rig.neutral[rig.inner_upper, 0], rig.neutral[rig.inner_upper, 1])
    edge = n + rig.mouth_width * (TEETH_EDGE - TEETH_ARCH * (u / half) ** 2)
    return np.stack([u, edge], axis=1)


def _own_teeth(
    portrait: np.ndarray, rig: MouthRig
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(mask of the portrait's visible upper teeth, their mean colour, their edge samples) or Nones."""
    src = rig.image_points(rig.source)
    inner = np.concatenate([src[rig.inner_upper], src[rig.inner_lower][::-1]])
    gap = rig.source[rig.inner_lower, 1] - rig.source[rig.inner_upper, 1]
    if float(np.max(gap)) < 0.04 * rig.mouth_width:
        return None, None, None  # lips closed or nearly: nothing to read
    mask = np.zeros(portrait.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(inner).astype(np.int32)], 1)
    inside = mask.astype(bool)
    rgb = portrait.astype(np.float32)
    lum = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    sat = rgb.max(axis=2) - rgb.min(axis=2)
    bright = float(np.percentile(lum[inside], 90))
    teeth = inside & (lum > 0.62 * bright) & (sat < 0.45 * np.maximum(lum, 1.0)) & (lum > 90)
    if teeth.sum() < max(6, 0.15 * inside.sum()):
        return None, None, None
    colour = rgb[teeth].mean(axis=0).astype(np.float32)
    ys, xs = np.nonzero(teeth)
    uv = rig.frame.to_frame(np.stack([xs, ys], axis=1).astype(np.float64))
    half = rig.mouth_width / 2.0
    bins = np.linspace(-half, half, 13)
    synthetic = _synthetic_edge(rig)
    edge_u, edge_v = [], []
    for lo, hi in itertools.pairwise(bins):
        col = uv[(uv[:, 0] >= lo) & (uv[:, 0] < hi)]
        if len(col) >= 3:
            edge_u.append((lo + hi) / 2.0)
            edge_v.append(float(np.percentile(col[:, 1], 95)))
    if len(edge_u) < 3:
        return None, None, None
    fallback = np.interp(np.array(edge_u), synthetic[:, 0], synthetic[:, 1])
    # upper incisors reach a little below the lip line; lower teeth in the portrait are not theirs
    own = np.clip(np.array(edge_v), fallback - 0.04 * rig.mouth_width, fallback + 0.035 * rig.mouth_width)
    edge = synthetic.copy()
    inside_u = (edge[:, 0] >= edge_u[0]) & (edge[:, 0] <= edge_u[-1])
    edge[inside_u, 1] = np.interp(edge[inside_u, 0], edge_u, own)
    soft = cv2.GaussianBlur(teeth.astype(np.float32), (0, 0), 0.7)
    return soft, colour, edge


def prepare(portrait: np.ndarray, rig: MouthRig, cavity_rgb: tuple[float, float, float] | None) -> Interior:
    """The interior of one portrait: lip and teeth colours, the teeth edge, the portrait's own teeth."""
    lip = lip_colour(portrait, rig)
    own, colour, edge = _own_teeth(portrait, rig) if cavity_rgb is None else (None, None, None)
    if colour is None:
        light = float(np.clip(lip.mean() / 140.0, 0.7, 1.05))
        colour = DEFAULT_TEETH_RGB * light
    return Interior(
        rig=rig,
        lip_rgb=lip,
        cavity_rgb=None if cavity_rgb is None else np.array(cavity_rgb, np.float32),
        teeth_rgb=colour,
        teeth_edge=_synthetic_edge(rig) if edge is None else edge,
        portrait=portrait,
        own_teeth=own,
    )


def paint(
    interior: Interior, shape: MouthShape, xy: np.ndarray, uv: np.ndarray, lips: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Interior colours (float32, (P, 3)) at pixels ``xy`` (image, (P, 2)) / ``uv`` (mouth frame).

    ``lips`` are the target inner upper and lower lip lines at those pixels' ``u`` (the upper lip's
    shadow falls on the teeth just under it).
    """
    rig = interior.rig
    mw, half = rig.mouth_width, rig.mouth_width / 2.0
    u, v = uv[:, 0], uv[:, 1]
    y_up, y_low = lips
    across = np.clip(np.abs(u) / (0.55 * mw), 0.0, 1.0)[:, None]
    base = interior.lip_rgb if interior.cavity_rgb is None else interior.cavity_rgb
    depth = np.clip((v - y_up) / np.maximum(y_low - y_up, 1.0), 0.0, 1.0)[:, None]
    jaw = jaw_drop(shape, rig) * (1.0 - 0.3 * np.clip(u / half, -1.0, 1.0) ** 2)
    edge = interior.edge(u)
    lower_top = edge - 0.012 * mw + jaw
    # cavity: dark red, darkest in the shadow just under the upper teeth, lighter towards the tongue
    shadow = np.clip((v - edge) / np.maximum(lower_top - edge, 1.0), 0.0, 1.0)[:, None]
    cavity_rgb = 0.36 * base * np.array([1.0, 0.5, 0.5], np.float32) + np.array([14.0, 2.0, 3.0], np.float32)
    cavity = cavity_rgb * (0.5 + 0.7 * shadow) * (1.0 - 0.45 * across) * (1.0 - 0.15 * depth)
    # tongue: on the jaw, its top above the lower teeth as the mouth opens, lower at the sides
    rise = 0.2 * mw * np.clip(jaw / (0.3 * mw), 0.0, 1.0)
    tongue_top = lower_top - rise + 0.14 * mw * (u / half) ** 2
    below = (v - tongue_top) / (0.03 * mw)
    t = _smoothstep(below)[:, None] * (1.0 - 0.6 * across)
    sheen = 1.0 + 0.18 * np.exp(-((below - 1.3) ** 2))[:, None]  # light on the tongue's upper surface
    colour = cavity * (1.0 - t) + tongue_rgb(interior) * (0.62 + 0.2 * t) * sheen * t
    if interior.teeth:
        colour = _teeth(interior, teeth_light(shape), colour, u=u, v=v, lines=(y_up, edge, lower_top))
    return colour.astype(np.float32)


def teeth_light(shape: MouthShape) -> float:
    """How lit the teeth are: rounded lips push forward and shade them."""
    return 1.0 - 0.2 * max(0.0, -shape.width)


def tongue_rgb(interior: Interior) -> np.ndarray:
    base = interior.lip_rgb if interior.cavity_rgb is None else interior.cavity_rgb
    pink = np.array([196.0, 112.0, 118.0], np.float32)
    return 0.45 * base * np.array([0.95, 0.6, 0.62], np.float32) + 0.55 * pink * float(
        np.clip(base.mean() / 130.0, 0.6, 1.1)
    )


def tongue_tip(interior: Interior, shape: MouthShape, colour: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """The ``th`` tongue tip, pressed between the teeth (drawn over the upper teeth's edge)."""
    if not shape.tongue:
        return colour
    mw = interior.rig.mouth_width
    u, v = uv[:, 0], uv[:, 1]
    tip_v = interior.edge(u) + 0.035 * mw
    r = np.sqrt((u / (0.2 * mw)) ** 2 + ((v - tip_v) / (0.055 * mw)) ** 2)
    tip = (_smoothstep((1.0 - r) / 0.3) * shape.tongue)[:, None]
    shade = 1.1 - 0.3 * np.clip((v - tip_v) / (0.06 * mw), -1.0, 1.0)[:, None]
    result: np.ndarray = colour * (1.0 - tip) + tongue_rgb(interior) * shade * tip
    return result


def _teeth(
    interior: Interior,
    light: float,
    colour: np.ndarray,
    *,
    u: np.ndarray,
    v: np.ndarray,
    lines: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    y_up, edge, lower_top = lines
    mw = interior.rig.mouth_width
    width = _smoothstep((UPPER_TEETH_HALF * mw - np.abs(u)) / (0.05 * mw))
    upper = width * _smoothstep((edge - v) / 0.8)
    gaps = 1.0 - 0.1 * np.exp(-((((np.abs(u) + 0.055 * mw) % (0.11 * mw) - 0.055 * mw) / (0.012 * mw)) ** 2))
    lip_shadow = 1.0 - 0.3 * np.exp(-np.maximum(v - y_up, 0.0) / (0.02 * mw))
    fall = 1.0 - 0.55 * np.clip(np.abs(u) / (UPPER_TEETH_HALF * mw), 0.0, 1.0) ** 2  # the buccal corridor
    incisal = 1.0 - 0.12 * _smoothstep((v - (edge - 0.02 * mw)) / (0.02 * mw))  # translucent edges
    teeth = interior.teeth_rgb[None, :] * (gaps * lip_shadow * fall * incisal * light)[:, None]
    colour = colour * (1.0 - upper[:, None]) + teeth * upper[:, None]
    lower_width = _smoothstep((LOWER_TEETH_HALF * mw - np.abs(u)) / (0.05 * mw))
    in_band = _smoothstep((v - lower_top) / 0.8) * _smoothstep(
        (lower_top + LOWER_TEETH_HEIGHT * mw - v) / 1.5
    )
    lower = (lower_width * in_band * (1.0 - upper))[:, None]
    return colour * (1.0 - lower) + teeth * 0.68 * lower
