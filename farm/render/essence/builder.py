"""One portrait -> an Essence pack: framing, landmarks, mouth and eye banks, idle loop and gestures.

The builder is pure CPU work of a few seconds at 512x512: 78 mouth patches (26 shapes x 3 smile
levels, two thin-plate splines each), 22 eye patches and ~300 full-frame remaps. Nothing is
downloaded; the face rig's models ship in the package (``farm.render.facerig``).

``BuildOptions`` (``farm.kernel.characters``) choose the mode (``person``: the face rig's mesh;
``animal``: the user's mouth and eye boxes, see ``character``) and the framing (a square crop
around the face, or the whole image at its aspect ratio for full- and half-body shots). Motion
amplitudes scale with the face, not the frame, so a small face in a full-body frame sways and
breathes like a close-up one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from farm.kernel.characters import MIN_MOUTH_FRAME_PX, AvatarMode, BuildOptions, Framing
from farm.kernel.errors import InvalidImage, MouthTooSmall
from farm.render.base import FPS, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from farm.render.essence import motion
from farm.render.essence.bank import MouthShape, animal_bank, person_bank
from farm.render.essence.character import character_landmarks
from farm.render.essence.eyes import eye_bank, face_eyes
from farm.render.essence.head import MotionField, Pose, head_nudge, motion_field, render_pose
from farm.render.essence.mouthrig import measured
from farm.render.essence.pack import FRAME_ENCODING, write_pack
from farm.render.essence.synth import MouthRegion, MouthSynth, mouth_region
from farm.render.essence.visemes import DEFAULT_CONFIG, FEATURES_KIND
from farm.render.landmarks import FaceLandmarks, as_rgb_uint8, detect_face

Progress = Callable[[str, float], None]

SMILE_LEVELS = (0.0, 0.5, 1.0)
FRAMING = 3.6  # default square crop side, in face-box widths: head and shoulders
REFERENCE_FACE_PX = 512 / FRAMING  # face width the motion amplitudes (pixels) are written for
ANIMAL_MOUTH_RGB = (200.0, 95.0, 105.0)  # an animal's open mouth: dark pink cavity, red tongue, no teeth


def shape_bank(mode: AvatarMode = AvatarMode.PERSON) -> list[MouthShape]:
    """People: the 26 shapes of ``bank.person_bank``; animals: the 7 openings."""
    return person_bank() if mode is AvatarMode.PERSON else animal_bank()


def _resized(crop: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    interp = cv2.INTER_AREA if out_w < crop.shape[1] else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (out_w, out_h), interpolation=interp))


def portrait_crop(
    shape: tuple[int, ...], box: tuple[int, ...], crop_scale: float = FRAMING, drop: float = 0.2
) -> tuple[int, int, int]:
    """(x, y, side) of the square face-framing crop of an image of ``shape`` around face ``box``."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    side = int(min(h, w, max(8, round(crop_scale * (x1 - x0)))))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0 + drop * side
    sx = int(np.clip(round(cx - side / 2), 0, w - side))
    sy = int(np.clip(round(cy - side / 2), 0, h - side))
    return sx, sy, side


def frame_portrait(
    image: np.ndarray, face: FaceLandmarks, size: int, crop_scale: float = FRAMING, drop: float = 0.2
) -> tuple[np.ndarray, FaceLandmarks]:
    """A square crop ``crop_scale`` face widths wide around the face (lowered by ``drop`` of its side
    to show the shoulders), resized to ``size``; landmarks follow."""
    sx, sy, side = portrait_crop(image.shape, face.box, crop_scale, drop)
    portrait = _resized(image[sy : sy + side, sx : sx + side], size, size)
    return portrait, face.moved((sx, sy), size / side, size / side)


def frame_full(image: np.ndarray, face: FaceLandmarks, size: int) -> tuple[np.ndarray, FaceLandmarks]:
    """The whole image, its longer side resized to ``size`` (both sides even); landmarks follow."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    out_w, out_h = (max(2, 2 * round(v * scale / 2)) for v in (w, h))
    return _resized(image, out_w, out_h), face.moved((0, 0), out_w / w, out_h / h)


def locate_face(image: np.ndarray, options: BuildOptions) -> FaceLandmarks:
    """The face rig's landmarks for a person; the skeleton around the user's boxes for an animal."""
    if options.mode is AvatarMode.PERSON:
        return detect_face(image)  # tiles find a small face in a large (full-body) frame
    mouth = options.mouth()
    assert mouth is not None, "check_image refuses animal mode without a mouth"
    return character_landmarks(mouth, options.eye_boxes())


def _drop(options: BuildOptions) -> float:
    return 0.2 if options.mode is AvatarMode.PERSON else 0.05


@dataclass(frozen=True)
class FramingPlan:
    """What ``build_pack`` will frame, found without rendering (the studio's preview before a build)."""

    face: FaceLandmarks  # in the image's pixels
    crop_box: tuple[int, int, int, int]  # the part of the image the agent's frame shows
    output_size: tuple[int, int]  # the frame's width and height
    mouth_px: float  # the mouth's width in the output frame (MIN_MOUTH_FRAME_PX needed)

    @property
    def mouth_too_small(self) -> bool:
        return self.mouth_px < MIN_MOUTH_FRAME_PX


def plan_framing(image_rgb: np.ndarray, options: BuildOptions, size: int = 512) -> FramingPlan:
    """Find the face (or the user's mouth skeleton) and the framing a build would use. Raises what the
    build would (``InvalidImage``, ``NoFaceFound``, ``PointsRequired``, ``PointsOutsideImage``); a mouth
    too small is reported (``mouth_too_small``), not raised, so the face can still be shown."""
    size = options.size or size
    size = size + (size % 2)
    image = _checked_image(image_rgb, options)
    face = locate_face(image, options)
    h, w = image.shape[:2]
    if options.framing is Framing.FULL:
        scale = size / max(h, w)
        out_w, out_h = (max(2, 2 * round(v * scale / 2)) for v in (w, h))
        return FramingPlan(face, (0, 0, w, h), (out_w, out_h), face.mouth_width * out_w / w)
    sx, sy, side = portrait_crop(image.shape, face.box, options.crop_scale, _drop(options))
    return FramingPlan(face, (sx, sy, sx + side, sy + side), (size, size), face.mouth_width * size / side)


def frame_image(
    image: np.ndarray, face: FaceLandmarks, options: BuildOptions, size: int
) -> tuple[np.ndarray, FaceLandmarks]:
    """Apply the options' framing; refuses a mouth too small in the result to animate."""
    if options.framing is Framing.FULL:
        portrait, framed = frame_full(image, face, size)
    else:
        drop = _drop(options)
        portrait, framed = frame_portrait(image, face, size, options.crop_scale, drop)
    if framed.mouth_width < MIN_MOUTH_FRAME_PX:
        raise MouthTooSmall(
            f"the mouth is {framed.mouth_width:.1f} pixels wide in the "
            f"{portrait.shape[1]}x{portrait.shape[0]} output frame; at least {MIN_MOUTH_FRAME_PX} "
            "are needed: use framing 'face', a smaller crop_scale or a larger size",
            mouth_px=round(framed.mouth_width, 1),
        )
    return portrait, framed


class _ClipRenderer:
    """Renders poses to frames, caching smile-warped portraits by smile level."""

    def __init__(self, synth: MouthSynth, field: MotionField, *, smiles: bool = True) -> None:
        self.synth, self.field, self.smiles = synth, field, smiles
        self._smiles: dict[float, np.ndarray] = {}

    def _smiling(self, level: float) -> np.ndarray:
        """The portrait with its mouth closed at smile ``level`` (the base frames' mouth)."""
        key = round(level, 2)
        if key not in self._smiles:
            self._smiles[key] = self.synth.smile_image(key)
        return self._smiles[key]

    def render(self, poses: list[Pose]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(I420 frames (n, 3H/2, W), head matrices (n, 2, 3), smile levels (n,)) of a clip."""
        h, w = self.synth.portrait.shape[:2]
        frames = np.empty((len(poses), h * 3 // 2, w), np.uint8)
        matrices = np.empty((len(poses), 2, 3), np.float32)
        smiles = np.array([round(p.smile, 2) if self.smiles else 0.0 for p in poses], np.float32)
        for i, pose in enumerate(poses):
            rgb, matrices[i] = render_pose(self._smiling(float(smiles[i])), self.field, pose)
            frames[i] = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        return frames, matrices, smiles


def _anchors(matrices: np.ndarray, point: np.ndarray) -> list[list[float]]:
    homogeneous = np.array([point[0], point[1], 1.0], np.float32)
    return [[round(float(v), 2) for v in m @ homogeneous] for m in matrices]


def _checked_image(image_rgb: np.ndarray, options: BuildOptions) -> np.ndarray:
    raw = np.asarray(image_rgb)
    if raw.ndim not in (2, 3) or (raw.ndim == 3 and raw.shape[2] not in (3, 4)) or min(raw.shape[:2]) < 64:
        raise InvalidImage("portrait must be a grey, RGB or RGBA image of at least 64x64", shape=raw.shape)
    image = as_rgb_uint8(raw)
    options.check_image(image.shape[1], image.shape[0])
    return image


def _mouth_bank(
    synth: MouthSynth, mode: AvatarMode
) -> tuple[list[MouthShape], tuple[float, ...], np.ndarray]:
    """(shapes with their measured gap and span, smile levels, patches (levels, shapes, h, w, 3))."""
    person = mode is AvatarMode.PERSON
    shapes = [measured(synth.rig, s) for s in shape_bank(mode)]
    levels = SMILE_LEVELS if person else (0.0,)
    patches = np.stack([np.stack([synth.render(s, level) for s in shapes]) for level in levels])
    return shapes, levels, patches


def build_pack(
    image_rgb: np.ndarray,
    out_dir: Path,
    *,
    size: int = 512,
    options: BuildOptions | None = None,
    progress: Progress | None = None,
) -> Path:
    """Build a pack from one image into ``out_dir``.

    ``size`` is the output's longer side (``options.size`` wins when set). Raises ``NoFaceFound``
    (person mode without a face), ``PointsRequired`` / ``PointsOutsideImage`` / ``MouthTooSmall``.
    """
    opts = options or BuildOptions()
    report = progress or (lambda _stage, _fraction: None)
    size = opts.size or size
    size = size + (size % 2)  # I420 frames need even sides
    image = _checked_image(image_rgb, opts)
    report("detect", 0.0)
    portrait, face = frame_image(image, locate_face(image, opts), opts, size)
    region = mouth_region(face, portrait.shape[:2])
    field = motion_field(face, region, portrait.shape[:2])
    report("mouth", 0.1)
    person = opts.mode is AvatarMode.PERSON
    synth = MouthSynth(portrait, face, region, cavity_rgb=None if person else ANIMAL_MOUTH_RGB)
    shapes, levels, patches = _mouth_bank(synth, opts.mode)
    eyes = eye_bank(portrait, face_eyes(face) if person or opts.eyes else [])
    head_box, head_mask = head_nudge(face, portrait.shape[:2])
    clips = _ClipRenderer(synth, field, smiles=person)
    scale = (face.box[2] - face.box[0]) / REFERENCE_FACE_PX
    programs = {"idle": motion.idle_loop(scale=scale)}
    programs.update({name: motion.gesture(name, scale) for name in motion.GESTURES})
    arrays: dict[str, np.ndarray] = {
        "mouth_patches": patches,
        "mouth_mask": region.mask,
        "feature_centres": np.array([[s.open, s.width] for s in shapes], np.float32),
        "eye_patches": eyes.patches,
        "eye_mask": eyes.mask,
        "head_mask": head_mask,
    }
    clip_meta: dict[str, Any] = {}
    for done, (name, poses) in enumerate(programs.items()):
        report(f"clip:{name}", 0.2 + 0.75 * done / len(programs))
        frames, matrices, smiles = clips.render(poses)
        arrays |= {f"frames_{name}": frames, f"poses_{name}": matrices, f"smile_{name}": smiles}
        clip_meta[name] = {"frames": len(poses), "mouth_anchor": _anchors(matrices, face.mouth_center)}
    report("write", 0.95)
    manifest = _manifest(face, region, (shapes, levels), clip_meta, (portrait.shape[1], portrait.shape[0]))
    manifest |= {
        "build": opts.model_dump(mode="json"),
        "eyes": eyes.manifest(),
        "head": {"box": list(head_box)},
    }
    write_pack(out_dir, manifest, arrays)
    report("done", 1.0)
    return out_dir


def _manifest(
    face: FaceLandmarks,
    region: MouthRegion,
    bank: tuple[list[MouthShape], tuple[float, ...]],
    clips: dict[str, Any],
    frame_size: tuple[int, int],
) -> dict[str, Any]:
    shapes, levels = bank
    return {
        "fps": FPS,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "samples_per_frame": SAMPLES_PER_FRAME,
        "frame_size": list(frame_size),
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
            "smile_levels": list(levels),
            "shapes": [s.manifest() for s in shapes],
        },
        "features": {"kind": FEATURES_KIND, **DEFAULT_CONFIG},
    }
