"""Contact sheets: one PNG that shows what an Essence avatar can do, so reviewers look, not read.

Rows: the idle loop (six frames across it); each viseme's mouth shape (the shape the bank names for
it, close up); the eyes (open, half, shut, and the gazes when the pack has them) with the whole
face open and shut; and the middle frame of every gesture. Every picture is composed by the same
code the renderer runs (``compose``: base frame, mouth patch, eye patches under the frame's head
pose), so the sheet shows what a viewer would see.
"""

from __future__ import annotations

import cv2
import numpy as np

from farm.render.essence.bank import VISEMES, shape_for_viseme
from farm.render.essence.compose import paste_eyes, paste_mouth
from farm.render.essence.renderer import LoadedAvatar

WIDTH = 1680
LABEL_PX = 18
BACKGROUND = (246, 246, 244)
INK = (30, 30, 30)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((LABEL_PX, tile.shape[1], 3), BACKGROUND, np.uint8)
    cv2.putText(bar, text, (4, LABEL_PX - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, INK, 1, cv2.LINE_AA)
    return np.vstack([tile, bar])


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    scale = min(width / image.shape[1], height / image.shape[0])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    small = cv2.resize(np.ascontiguousarray(image), size, interpolation=interp)
    out = np.full((height, width, 3), BACKGROUND, np.uint8)
    y, x = (height - size[1]) // 2, (width - size[0]) // 2
    out[y : y + size[1], x : x + size[0]] = small
    return out


def _crop(image: np.ndarray, centre: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    h, w = image.shape[:2]
    x0, x1 = int(max(0, centre[0] - half_w)), int(min(w, centre[0] + half_w))
    y0, y1 = int(max(0, centre[1] - half_h)), int(min(h, centre[1] + half_h))
    return image[y0:y1, x0:x1]


def _row(title: str, tiles: list[np.ndarray]) -> np.ndarray:
    heading = np.full((24, WIDTH, 3), BACKGROUND, np.uint8)
    cv2.putText(heading, title, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, INK, 1, cv2.LINE_AA)
    body = np.full((tiles[0].shape[0], WIDTH, 3), BACKGROUND, np.uint8)
    x = 0
    for tile in tiles:
        if x + tile.shape[1] > WIDTH:
            break
        body[:, x : x + tile.shape[1]] = tile
        x += tile.shape[1] + 4
    return np.vstack([heading, body])


class SheetMaker:
    """Composes the pictures of one loaded avatar."""

    def __init__(self, avatar: LoadedAvatar) -> None:
        self.avatar, self.pack = avatar, avatar.pack
        manifest = self.pack.manifest
        self.mouth = np.asarray(manifest["mouth"]["anchor"], np.float64)
        points = np.asarray(manifest["face"]["landmarks"], np.float64)
        self.mouth_width = float(np.linalg.norm(points[54] - points[48]))
        self.eyes = points[36:48]
        self.face_box = manifest["face"]["box"]

    def frame(self, clip: str = "idle", pos: int = 0, shape: int | None = None, eyes: int = 0) -> np.ndarray:
        """Base frame ``pos`` of ``clip`` with mouth ``shape`` and eye state ``eyes`` composed in."""
        image = self.pack.base_frame(clip, pos)
        level = int(self.avatar.level_of[clip][pos])
        if shape is not None and shape != self.avatar.closed:
            paste_mouth(image, self.pack, self.avatar.layers, (clip, pos, level), [(shape, 1.0)])
        paste_eyes(image, self.pack, self.avatar.layers, (clip, pos), eyes)
        return image

    def face(self, image: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.face_box
        centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 + 0.1 * (y1 - y0)])
        return _crop(image, centre, 0.8 * (x1 - x0), 0.85 * (y1 - y0))

    def idle_row(self) -> np.ndarray:
        n = self.pack.clip_length("idle")
        tiles = [
            _label(_fit(self.frame("idle", i), 200, 200), f"idle {i}/{n}")
            for i in np.linspace(0, n - 1, 6).astype(int)
        ]
        face = self.frame("idle", 0)
        tiles.append(_label(_fit(self.face(face), 200, 200), "face, rest"))
        return _row("idle loop (sway, breathing; blinks, glances and speech beats are added live)", tiles)

    def viseme_row(self) -> np.ndarray:
        half = 1.15 * self.mouth_width
        tiles = []
        for viseme in VISEMES:
            index = shape_for_viseme(self.pack.shapes, viseme)
            mouth = _crop(self.frame("idle", 0, shape=index), self.mouth, half, 0.8 * half)
            tiles.append(_label(_fit(mouth, 108, 96), f"{viseme} {self.pack.shapes[index].name}"))
        return _row("visemes: the bank's shape for each (mouth close-up)", tiles)

    def viseme_faces_row(self) -> np.ndarray:
        tiles = []
        for viseme in ("sil", "PP", "FF", "TH", "SS", "aa", "E", "oh", "ou"):
            index = shape_for_viseme(self.pack.shapes, viseme)
            tiles.append(_label(_fit(self.face(self.frame("idle", 0, shape=index)), 180, 200), viseme))
        return _row("visemes on the whole face", tiles)

    def eye_row(self) -> np.ndarray:
        states = self.pack.eye_states
        if len(states) <= 1:
            face = self.face(self.frame())
            return _row("eyes: none given, no blinks", [_label(_fit(face, 180, 200), "open")])
        centre = self.eyes.mean(axis=0)
        span = float(np.ptp(self.eyes[:, 0])) * 0.75 + 4.0
        picks = [("open", 0), *((s.name, i) for i, s in enumerate(states) if s.blink in (0.6, 1.0))]
        picks += [
            (s.name, i) for i, s in enumerate(states) if s.gaze in ((-1.0, 0.0), (1.0, 0.0), (0.0, -1.0))
        ]
        tiles = [
            _label(_fit(_crop(self.frame(eyes=i), centre, span, 0.45 * span), 220, 120), name)
            for name, i in picks
        ]
        shut = next(i for i, s in enumerate(states) if s.blink == 1.0)
        tiles += [_label(_fit(self.face(self.frame(eyes=shut)), 120, 120), "face, shut")]
        return _row("eyes: blink (the lids' own skin slides down) and gaze", tiles)

    def gesture_row(self) -> np.ndarray:
        tiles = []
        for gesture in self.pack.gestures:
            pos = gesture.frames // 2
            tiles.append(_label(_fit(self.frame(gesture.name, pos), 200, 200), gesture.name))
        return _row("gestures (middle frame)", tiles)


def contact_sheet(avatar: LoadedAvatar, title: str) -> np.ndarray:
    """The whole sheet of ``avatar`` as an (H, 1680, 3) uint8 RGB image."""
    maker = SheetMaker(avatar)
    heading = np.full((34, WIDTH, 3), BACKGROUND, np.uint8)
    width, height = avatar.pack.frame_size
    counts = f"{len(avatar.pack.shapes)} mouth shapes, {len(avatar.pack.eye_states)} eye states"
    text = f"{title}  ({width}x{height}, {counts})"
    cv2.putText(heading, text, (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, INK, 1, cv2.LINE_AA)
    rows = [heading, maker.idle_row(), maker.viseme_row()]
    if any(s.width != 0.0 for s in avatar.pack.shapes):
        rows.append(maker.viseme_faces_row())
    rows += [maker.eye_row(), maker.gesture_row()]
    return np.vstack(rows)


def write_sheet(avatar: LoadedAvatar, title: str, out_png: str) -> None:
    """Write the sheet as a PNG."""
    if not cv2.imwrite(out_png, cv2.cvtColor(contact_sheet(avatar, title), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out_png}")
