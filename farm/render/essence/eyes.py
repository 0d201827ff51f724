"""Eyes for the pack builder: blinks that close the real eyelids, and gaze, as small eye patches.

**Blink (lid warp).** Per image column across an eye, the upper lid's edge slides down to a
closing line 78 % of the way to the lower lid, which rises to meet it; the skin above the lid (a
band ``LID_BAND`` eye-heights tall) stretches down with it and the eyeball between the lids stays
where it is, covered rather than squashed. The lids are the mesh's eyelid contours for people (9
points each, refined by the iris model), and the halves of the eye's ellipse for animals (their
boxes, with a shorter band so ears and brows are not dragged over the eye). The lash line darkens
as the lid closes.

**Gaze.** The iris (mesh 468-477) and the eyeball around it slide sideways or up and down inside
the opening between the lids, sampled from an eyeball whose hidden edges are inpainted, so no lid
skin is pulled into the eye.

Every state is rendered once per eye into a patch of the portrait; the renderer blends the patch of
the current state into the frame under the frame's head pose, like a mouth patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from farm.render.essence.bank import EyeState
from farm.render.facerig import topology as topo
from farm.render.landmarks import FaceLandmarks

CLOSE_AT = 0.78  # where the lids meet, from the upper lid's edge to the lower lid's
LID_BAND = 1.2  # skin above the upper lid that stretches over the eye, eye heights (people)
ANIMAL_LID_BAND = 0.55
GAZE_X = 0.16  # iris travel at full gaze, eye widths (sideways)
GAZE_Y = 0.08  # (up and down: the lids hide most of it)
BLINK_LEVELS = (0.3, 0.6, 0.85, 1.0)
GAZES = ((-1.0, 0.0), (-0.5, 0.0), (0.5, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0))


def eye_states(*, gaze: bool) -> list[EyeState]:
    """``open`` (index 0, the base frames' own eyes) then the blink levels, then the gazes."""
    states = [EyeState("open")]
    states += [EyeState(f"blink_{round(100 * b)}", blink=b) for b in BLINK_LEVELS]
    if gaze:
        states += [EyeState(f"gaze_{x:+.1f}_{y:+.1f}", gaze=(x, y)) for x, y in GAZES]
    return states


@dataclass(frozen=True, slots=True)
class Eye:
    """One eye's lids (outer to inner corner, image pixels) and its iris (centre, radius) if known."""

    upper: np.ndarray  # (K, 2)
    lower: np.ndarray  # (K, 2)
    iris: tuple[np.ndarray, float] | None
    band: float  # LID_BAND or ANIMAL_LID_BAND

    @property
    def width(self) -> float:
        return float(abs(self.upper[-1, 0] - self.upper[0, 0]))

    @property
    def height(self) -> float:
        """The widest opening between the lids."""
        xs = np.linspace(self.upper[:, 0].min(), self.upper[:, 0].max(), 16)
        return float(max(1.5, np.max(_curve(self.lower, xs) - _curve(self.upper, xs))))

    @property
    def centre(self) -> np.ndarray:
        return np.vstack([self.upper, self.lower]).mean(axis=0)


def _curve(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


def face_eyes(face: FaceLandmarks) -> list[Eye]:
    """Both eyes of a person (mesh), or the one or two eyes of an animal skeleton (68 points)."""
    if face.mesh is not None:
        eyes = []
        for upper, lower, centre, contour in (
            (topo.EYE_R_UPPER, topo.EYE_R_LOWER, topo.IRIS_R_CENTRE, topo.IRIS_R_CONTOUR),
            (topo.EYE_L_UPPER, topo.EYE_L_LOWER, topo.IRIS_L_CENTRE, topo.IRIS_L_CONTOUR),
        ):
            c = face.mesh[centre, :2].astype(np.float64)
            radius = float(np.linalg.norm(face.mesh[list(contour), :2] - c, axis=1).mean())
            eyes.append(
                Eye(
                    face.mesh_points(upper).astype(np.float64),
                    face.mesh_points(lower).astype(np.float64),
                    (c, radius),
                    LID_BAND,
                )
            )
        return eyes
    found: list[np.ndarray] = []
    for start in (36, 42):
        six = face.points[start : start + 6].astype(np.float64)
        if any(np.allclose(six, e) for e in found):
            continue  # one eye given: the skeleton repeats it
        found.append(six)
    return [_ellipse_eye(six) for six in found]


def _ellipse_eye(six: np.ndarray) -> Eye:
    """An animal's eye: the ellipse through its six skeleton points, as two lids of 9 points."""
    cx, cy = six.mean(axis=0)
    rx = 0.5 * float(np.ptp(six[:, 0])) + 1.0
    ry = 0.5 * float(np.ptp(six[:, 1])) / 0.866 + 1.0
    t = np.linspace(np.pi, 0.0, 9)
    upper = np.stack([cx + rx * np.cos(t), cy - ry * np.sin(t)], axis=1)
    lower = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)
    return Eye(upper, lower, None, ANIMAL_LID_BAND)


@dataclass(frozen=True, slots=True)
class EyeRegion:
    """The rectangle of one eye's patch in the portrait."""

    x0: int
    y0: int
    x1: int
    y1: int


def patch_size(eyes: list[Eye]) -> tuple[int, int]:
    """(h, w) of an eye patch big enough for every eye's lid band, lower lid and gaze."""
    h = max(int(np.ceil((eye.band + 1.0 + 0.6) * eye.height + 0.5 * eye.width)) + 6 for eye in eyes)
    w = max(int(np.ceil(1.7 * eye.width)) + 6 for eye in eyes)
    return h, w


def eye_region(eye: Eye, size: tuple[int, int], image_size: tuple[int, int]) -> EyeRegion:
    """The patch rectangle of ``eye``: ``size`` pixels, placed so the lid band fits above the eye."""
    h, w = size
    height, width = image_size
    top = float(eye.upper[:, 1].min()) - eye.band * eye.height - 0.25 * eye.width - 3
    cx = float(eye.centre[0])
    x0 = int(np.clip(round(cx - w / 2), 0, max(0, width - w)))
    y0 = int(np.clip(round(top), 0, max(0, height - h)))
    return EyeRegion(x0, y0, x0 + w, y0 + h)


def feather(size: tuple[int, int]) -> np.ndarray:
    """A patch mask: 1 in the middle, fading to 0 over the outer 12 % of each side."""
    h, w = size

    def ramp(n: int) -> np.ndarray:
        idx = np.arange(n, dtype=np.float32)
        edge = max(2.0, 0.12 * n)
        t = np.clip(np.minimum(idx, n - 1 - idx) / edge, 0.0, 1.0)
        return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)

    return np.outer(ramp(h), ramp(w)).astype(np.float32)


def render_eye(portrait: np.ndarray, eye: Eye, region: EyeRegion, state: EyeState) -> np.ndarray:
    """The eye's region of ``portrait`` in ``state``: (h, w, 3) uint8."""
    crop = portrait[region.y0 : region.y1, region.x0 : region.x1]
    if state.blink > 0.0:
        return _blink(crop, eye, region, state.blink)
    if state.gaze != (0.0, 0.0) and eye.iris is not None:
        return _gaze(crop, eye, region, state.gaze)
    return crop.copy()


def _lid_lines(eye: Eye, region: EyeRegion) -> tuple[np.ndarray, ...]:
    """Per patch column: taper (1 across the eye, 0 beyond), upper and lower lid rows (patch pixels)."""
    xs = np.arange(region.x0, region.x1, dtype=np.float64)
    left, right = sorted((float(eye.upper[0, 0]), float(eye.upper[-1, 0])))
    reach = 0.2 * eye.width + 1.0
    outside = np.maximum(left - xs, xs - right)
    taper = np.clip(1.0 - outside / reach, 0.0, 1.0)
    taper = taper * taper * (3.0 - 2.0 * taper)
    y_up = _curve(eye.upper, np.clip(xs, left, right)) - region.y0
    y_low = _curve(eye.lower, np.clip(xs, left, right)) - region.y0
    return taper, y_up, np.maximum(y_low, y_up)


def _blink(crop: np.ndarray, eye: Eye, region: EyeRegion, amount: float) -> np.ndarray:
    h, w = crop.shape[:2]
    taper, y_up, y_low = _lid_lines(eye, region)
    a = amount * taper
    close = y_up + CLOSE_AT * (y_low - y_up)
    edge = y_up + a * (close - y_up)  # where the upper lid's edge is now
    lifted = y_low + a * (close - y_low)  # and the lower lid's
    top = y_up - eye.band * eye.height * np.maximum(taper, 0.25)
    bottom = y_low + 0.5 * eye.height
    ys = np.arange(h, dtype=np.float64)[:, None]
    src = ys.repeat(w, axis=1)
    upper = (ys >= top) & (ys < edge)
    src = np.where(upper, top + (ys - top) * (y_up - top) / np.maximum(edge - top, 1e-3), src)
    lower = (ys >= lifted) & (ys <= bottom)
    src = np.where(lower, y_low + (ys - lifted) * (bottom - y_low) / np.maximum(bottom - lifted, 1e-3), src)
    map_x = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w))
    out = cv2.remap(crop, map_x, src.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    near_edge = np.exp(-(((ys - edge[None, :]) / (0.08 * eye.height + 0.7)) ** 2))
    soft = cv2.GaussianBlur(out, (1, 0), sigmaX=0.1, sigmaY=1.0).astype(
        np.float32
    )  # no step at the lid's edge
    near_low = np.exp(-(((ys - lifted[None, :]) / (0.05 * eye.height + 0.7)) ** 2)) * a[None, :]
    smooth = np.maximum(near_edge, near_low)[..., None]
    blended = out.astype(np.float32) + (soft - out.astype(np.float32)) * smooth
    lash = 0.45 * np.minimum(1.0, 4.0 * a)[None, :] * near_edge  # the lid margin and lashes
    return np.clip(blended * (1.0 - lash[..., None]) + 0.5, 0, 255).astype(np.uint8)


def _aperture(eye: Eye, region: EyeRegion, shape: tuple[int, int]) -> np.ndarray:
    """Soft (0..1) mask of the opening between the lids, in patch pixels."""
    h, w = shape
    polygon = np.vstack([eye.upper, eye.lower[::-1]]) - (region.x0, region.y0)
    canvas = np.zeros((h * 4, w * 4), np.uint8)
    cv2.fillPoly(canvas, [np.round(polygon * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA)
    mask = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return cv2.erode(mask, np.ones((2, 2), np.uint8))


def _gaze(crop: np.ndarray, eye: Eye, region: EyeRegion, gaze: tuple[float, float]) -> np.ndarray:
    assert eye.iris is not None
    h, w = crop.shape[:2]
    aperture = _aperture(eye, region, (h, w))
    hidden = (aperture < 0.5).astype(np.uint8)
    eyeball = cv2.inpaint(np.ascontiguousarray(crop), hidden, 3, cv2.INPAINT_TELEA)
    centre, radius = eye.iris
    cx, cy = centre[0] - region.x0, centre[1] - region.y0
    dx, dy = gaze[0] * GAZE_X * eye.width, gaze[1] * GAZE_Y * eye.width
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(gx - cx - dx, gy - cy - dy) / max(radius, 1.0)
    carry = np.clip((2.3 - r) / 1.1, 0.0, 1.0)
    carry = carry * carry * (3.0 - 2.0 * carry)
    map_x = (gx - dx * carry).astype(np.float32)
    map_y = (gy - dy * carry).astype(np.float32)
    moved = cv2.remap(eyeball, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    a = aperture[..., None]
    return np.clip(crop * (1.0 - a) + moved * a + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class EyeBank:
    """Every eye state of every eye, ready for the pack."""

    patches: np.ndarray  # (eyes, states, h, w, 3) uint8
    mask: np.ndarray  # (h, w) float32
    origins: tuple[tuple[int, int], ...]
    states: tuple[EyeState, ...]

    @property
    def blinks(self) -> bool:
        return len(self.origins) > 0

    @property
    def gaze(self) -> bool:
        return any(s.gaze != (0.0, 0.0) for s in self.states)

    def manifest(self) -> dict[str, object]:
        return {
            "blinks": self.blinks,
            "gaze": self.gaze,
            "origins": [list(o) for o in self.origins],
            "states": [s.manifest() for s in self.states],
        }


def eye_bank(portrait: np.ndarray, eyes: list[Eye]) -> EyeBank:
    """Render every state of ``eyes`` (none: a pack without blinks, e.g. an animal without eyes)."""
    if not eyes:
        return EyeBank(
            np.zeros((0, 1, 1, 1, 3), np.uint8), np.zeros((1, 1), np.float32), (), (EyeState("open"),)
        )
    states = eye_states(gaze=all(e.iris is not None for e in eyes))
    size = patch_size(eyes)
    regions = [eye_region(e, size, portrait.shape[:2]) for e in eyes]
    patches = np.stack(
        [
            np.stack([render_eye(portrait, e, r, s) for s in states])
            for e, r in zip(eyes, regions, strict=True)
        ]
    )
    return EyeBank(patches, feather(size), tuple((r.x0, r.y0) for r in regions), tuple(states))
