"""Landmarks for characters no face detector finds (animal mode): 68 points from the user's boxes.

The rest of the builder (mouth region, thin-plate-spline mouth shapes, blinks, head motion) works on
iBUG 68-point landmarks. For an animal, cartoon or mascot the user gives the mouth box (and maybe the
eyes); this module lays a plausible 68-point skeleton around them: lips on an ellipse filling the
mouth box (closed, a thin inner slit), a nose just above the mouth (held still by the mouth warp),
a jaw U and chin below it (they drop as the jaw opens), and eyes on ellipses in their boxes. Points
nobody gave (eyes without ``eyes``) are placed for geometry only; the builder then makes no blinks.

No animal-face detector is used: none with shipped weights works with this project's OpenCV 5 (the
cat Haar cascades came with OpenCV 4's wheels and are gone) and the anime-face packages on PyPI fetch
their weights at run time or need torch; see docs/characters.md.
"""

from __future__ import annotations

import math

import numpy as np

from farm.render.landmarks import FaceLandmarks

Box = tuple[float, float, float, float]
DETECTOR = "user-points"


def _ellipse(cx: float, cy: float, rx: float, ry: float, degrees: list[float]) -> list[tuple[float, float]]:
    return [(cx + rx * math.cos(math.radians(a)), cy - ry * math.sin(math.radians(a))) for a in degrees]


def _eye(box: Box) -> list[tuple[float, float]]:
    """iBUG eye order: outer-left corner, two upper, right corner, two lower."""
    x0, y0, x1, y1 = box
    return _ellipse((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2, [180, 120, 60, 0, -60, -120])


def _face_box(mouth: Box, eyes: list[Box]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = mouth
    mw = x1 - x0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if not eyes:
        return (round(cx - 1.3 * mw), round(cy - 2.2 * mw), round(cx + 1.3 * mw), round(cy + 0.9 * mw))
    xs = [x0, x1] + [v for e in eyes for v in (e[0], e[2])]
    ys = [y0, y1] + [v for e in eyes for v in (e[1], e[3])]
    left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
    width = max(right - left, 2.4 * mw)
    mid = (left + right) / 2
    height = bottom - top
    return (
        round(mid - 0.6 * width),
        round(top - 0.3 * height),
        round(mid + 0.6 * width),
        round(bottom + 0.25 * max(height, mw)),
    )


def character_landmarks(mouth: Box, eyes: list[Box]) -> FaceLandmarks:
    """A 68-point skeleton (iBUG order) around a user-given mouth box and 0-2 eye boxes."""
    x0, y0, x1, y1 = mouth
    mw = x1 - x0
    mh = max(y1 - y0, 0.15 * mw)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    chin_y = cy + mh / 2 + 0.45 * mw
    jaw_top = cy - 0.6 * mw
    jaw = [
        (
            cx - 1.2 * mw * math.cos(math.pi * i / 16),
            jaw_top + (chin_y - jaw_top) * math.sin(math.pi * i / 16),
        )
        for i in range(17)
    ]
    placed = sorted(eyes, key=lambda b: b[0])
    if not placed:
        eye_y = cy - 1.4 * mw
        placed = [(cx - 1.0 * mw, eye_y - 0.15 * mw, cx - 0.5 * mw, eye_y + 0.15 * mw)]
        placed.append((cx + 0.5 * mw, eye_y - 0.15 * mw, cx + 1.0 * mw, eye_y + 0.15 * mw))
    elif len(placed) == 1:
        placed = [placed[0], placed[0]]
    left_eye, right_eye = placed
    eye_y = (left_eye[1] + left_eye[3] + right_eye[1] + right_eye[3]) / 4
    brows = [
        (left_eye[0] + (left_eye[2] - left_eye[0]) * t, left_eye[1] - 0.3 * mw) for t in np.linspace(0, 1, 5)
    ]
    brows += [
        (right_eye[0] + (right_eye[2] - right_eye[0]) * t, right_eye[1] - 0.3 * mw)
        for t in np.linspace(0, 1, 5)
    ]
    nose_y = cy - mh / 2 - 0.3 * mw
    bridge = [(cx, eye_y + (nose_y - 0.1 * mw - eye_y) * t) for t in (0.0, 0.33, 0.66, 1.0)]
    nostrils = [(cx + k * mw, nose_y) for k in (-0.3, -0.15, 0.0, 0.15, 0.3)]
    outer = _ellipse(cx, cy, mw / 2, mh / 2, [180, 150, 120, 90, 60, 30, 0, -30, -60, -90, -120, -150])
    inner = [(cx - 0.4 * mw, cy), *_ellipse(cx, cy, 0.4 * mw, 0.02 * mh, [135, 90, 45])]
    inner += [(cx + 0.4 * mw, cy), *_ellipse(cx, cy, 0.4 * mw, 0.02 * mh, [-45, -90, -135])]
    points = jaw + brows + bridge + nostrils + _eye(left_eye) + _eye(right_eye) + outer + inner
    array = np.array(points, np.float32)
    assert array.shape == (68, 2)
    return FaceLandmarks(points=array, box=_face_box(mouth, eyes), score=0.0, method=DETECTOR)
