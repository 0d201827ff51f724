"""``farm bench characters``: Essence beyond head-and-shoulders portraits, measured and pictured.

Builds three characters with the real builder and renders them with the real renderer:

* ``person-full-body``: the sample portrait at half size in a tall 448x640 canvas (a small face in a
  large frame), framing ``full`` (the whole frame is kept);
* ``cat``: scikit-image's ``chelsea`` photo in animal mode, mouth and eyes given as boxes;
* ``cartoon``: a mascot drawn here with OpenCV, animal mode with given mouth and eyes.

For each, built at ``--size`` (default 512): a contact sheet PNG (``farm sheet``'s: idle, each viseme's
shape, blink and gaze, gestures) and lip-sync numbers over ``--speech-s`` (default 5 s) of speech-like
audio: the correlation of the renderer's mouth openness
with the audio's loudness, the correlation of the *pixel change* in the mouth box with loudness (a
measurement on the pictures themselves) and where the pixel change lies (its centroid's distance
from the mouth, in mouth widths). A sweep then finds the smallest face (pixels) that builds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from farm.bench.common import finish, parse_args, speech_like
from farm.kernel.characters import AvatarMode, BuildOptions, Framing
from farm.kernel.errors import FarmError
from farm.render.audio import frame_energy
from farm.render.essence import EssenceRenderer, LoadedAvatar, build_pack, load_pack, sample_portrait
from farm.render.essence.builder import locate_face
from farm.render.essence.sheet import write_sheet

SPEECH_S = 5.0
SWEEP = (0.5, 0.35, 0.25, 0.2, 0.15, 0.12)


@dataclass(frozen=True)
class Character:
    """A test character: its image and how to build it."""

    name: str
    image: np.ndarray
    options: BuildOptions


CAT_MOUTH_BOX = [236.0, 266.0, 286.0, 286.0]
CAT_EYES = [[137.0, 88.0, 207.0, 145.0], [293.0, 110.0, 343.0, 162.0]]


def full_body_canvas(scale: float = 0.5, canvas: tuple[int, int] = (448, 640)) -> np.ndarray:
    """The sample portrait scaled by ``scale``, near the top of a tall canvas (width, height)."""
    width, height = canvas
    side = round(512 * scale)
    small = cv2.resize(sample_portrait(), (side, side), interpolation=cv2.INTER_AREA)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = np.array([210, 220, 235], np.float32) * (1 - ramp) + np.array([120, 110, 100], np.float32) * ramp
    image = np.broadcast_to(image, (height, width, 3)).astype(np.uint8).copy()
    x0, y0 = (width - side) // 2, height // 10
    image[y0 : y0 + side, x0 : x0 + side] = small
    return image


def cartoon() -> tuple[np.ndarray, list[float], list[list[float]]]:
    """A drawn mascot (384x384): (image, mouth box, eye boxes)."""
    image = np.full((384, 384, 3), (170, 215, 240), np.uint8)
    cv2.ellipse(image, (192, 400), (150, 110), 0, 180, 360, (60, 120, 200), -1, cv2.LINE_AA)  # body
    cv2.circle(image, (192, 190), 120, (250, 200, 60), -1, cv2.LINE_AA)  # head
    for cx in (120, 264):
        cv2.circle(image, (cx, 88), 34, (240, 170, 40), -1, cv2.LINE_AA)  # ears
    for cx in (148, 236):
        cv2.ellipse(image, (cx, 160), (26, 32), 0, 0, 360, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(image, (cx + 4, 166), 13, (30, 30, 30), -1, cv2.LINE_AA)
        cv2.circle(image, (cx + 8, 160), 4, (255, 255, 255), -1, cv2.LINE_AA)
    cv2.ellipse(image, (192, 214), (14, 10), 0, 0, 360, (120, 60, 40), -1, cv2.LINE_AA)  # nose
    cv2.ellipse(image, (192, 248), (40, 12), 0, 0, 180, (150, 40, 50), 5, cv2.LINE_AA)  # closed smile
    for sx in (-1, 1):
        cv2.circle(image, (192 + sx * 82, 236), 16, (250, 160, 120), -1, cv2.LINE_AA)  # cheeks
    eyes = [[122.0, 128.0, 174.0, 192.0], [210.0, 128.0, 262.0, 192.0]]
    return image, [150.0, 238.0, 234.0, 266.0], eyes


def characters() -> list[Character]:
    from skimage import data

    drawn, mouth, eyes = cartoon()
    animal = AvatarMode.ANIMAL
    return [
        Character("person-full-body", full_body_canvas(), BuildOptions(framing=Framing.FULL)),
        Character(
            "cat",
            np.ascontiguousarray(data.chelsea()),
            BuildOptions(mode=animal, framing=Framing.FULL, mouth_box=CAT_MOUTH_BOX, eyes=CAT_EYES),
        ),
        Character(
            "cartoon", drawn, BuildOptions(mode=animal, framing=Framing.FULL, mouth_box=mouth, eyes=eyes)
        ),
    ]


def lip_sync(avatar: LoadedAvatar, seconds: float = SPEECH_S, seed: int = 0) -> dict[str, float]:
    """Render speech; correlate loudness with mouth openness and with mouth-box pixel change."""
    audio = speech_like(seconds, seed=seed)
    renderer = EssenceRenderer(avatar, "lip-sync")
    renderer.push_audio(audio, 16_000)
    renderer.flush()
    pack = avatar.pack
    x0, y0, x1, y1 = pack.manifest["mouth"]["region"]
    anchor = np.array(pack.manifest["mouth"]["anchor"], np.float64)
    mouth_w = float(
        np.linalg.norm(
            np.subtract(pack.manifest["face"]["landmarks"][54], pack.manifest["face"]["landmarks"][48])
        )
    )
    openness, change, offsets, inside = [], [], [], []
    i = 0
    while renderer.pending_frames():
        frame = renderer.next_frame()
        base = pack.base_frame("idle", i % pack.clip_length("idle")).astype(np.float32)
        diff = np.abs(frame.pixels.astype(np.float32) - base).sum(axis=2)
        openness.append(frame.mouth_open)
        change.append(float(diff[y0:y1, x0:x1].mean()))
        if diff.sum() > 0:
            ys, xs = np.nonzero(diff)
            weights = diff[ys, xs]
            centroid = np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])
            offsets.append(float(np.linalg.norm(centroid - anchor)) / max(mouth_w, 1.0))
            inside.append(float(diff[y0:y1, x0:x1].sum() / diff.sum()))
        i += 1
    energy = frame_energy(audio)[: len(openness)]
    return {
        "frames": len(openness),
        "openness_loudness_corr": round(float(np.corrcoef(openness, energy)[0, 1]), 3),
        "mouth_pixels_loudness_corr": round(float(np.corrcoef(change, energy)[0, 1]), 3),
        "open_max": round(float(np.max(openness)), 2),
        "closed_share": round(float(np.mean(np.asarray(openness) == 0.0)), 3),
        "change_centroid_offset_mouth_widths_p95": round(float(np.percentile(offsets, 95)), 3)
        if offsets
        else 0.0,
        "change_in_mouth_region_share_min": round(float(np.min(inside)), 3) if inside else 1.0,
    }


def contact_sheet(avatar: LoadedAvatar, name: str, path: Path) -> Path:
    """The avatar's contact sheet (``farm.render.essence.sheet``: idle, visemes, blink and gaze, gestures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_sheet(avatar, name, str(path))
    return path


def smallest_face(fractions: Sequence[float] = SWEEP) -> list[dict[str, Any]]:
    """Build the sample portrait scaled into a 1024² canvas at each fraction (face framing)."""
    rows = []
    for fraction in fractions:
        side = round(512 * fraction)
        canvas = np.full((1024, 1024, 3), 200, np.uint8)
        canvas[400 : 400 + side, 300 : 300 + side] = cv2.resize(
            sample_portrait(), (side, side), interpolation=cv2.INTER_AREA
        )
        row: dict[str, Any] = {"portrait_scale": fraction, "face_px_nominal": round(90 * fraction)}
        with tempfile.TemporaryDirectory(prefix="face-sweep-") as tmp:
            started = time.perf_counter()
            try:
                face = locate_face(canvas, BuildOptions())
                build_pack(canvas, Path(tmp) / "p", size=192)
                row |= {
                    "builds": True,
                    "face_box_px": face.box[2] - face.box[0],
                    "mouth_px": round(face.mouth_width, 1),
                    "build_s": round(time.perf_counter() - started, 2),
                }
            except FarmError as exc:
                row |= {"builds": False, "code": exc.code}
        rows.append(row)
    return rows


def run(
    out: Path, *, size: int = 512, speech_s: float = SPEECH_S, sweep: Sequence[float] = SWEEP
) -> dict[str, Any]:
    results: dict[str, Any] = {"bench": "characters", "size": size, "speech_s": speech_s, "characters": {}}
    with tempfile.TemporaryDirectory(prefix="characters-") as tmp:
        for character in characters():
            started = time.perf_counter()
            pack_dir = build_pack(
                character.image, Path(tmp) / character.name, size=size, options=character.options
            )
            build_s = time.perf_counter() - started
            avatar = LoadedAvatar(load_pack(pack_dir))
            sheet = contact_sheet(avatar, character.name, out / f"{character.name}.png")
            results["characters"][character.name] = {
                "mode": character.options.mode.value,
                "framing": character.options.framing.value,
                "image_size": [int(character.image.shape[1]), int(character.image.shape[0])],
                "frame_size": list(avatar.pack.frame_size),
                "mouth_width_px": round(
                    float(
                        np.linalg.norm(
                            np.subtract(*[avatar.pack.manifest["face"]["landmarks"][i] for i in (54, 48)])
                        )
                    ),
                    1,
                ),
                "build_s": round(build_s, 2),
                "sheet": sheet.name,
                **lip_sync(avatar, speech_s),
            }
    if sweep:
        results["smallest_face"] = smallest_face(sweep)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench characters", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=Path("out/characters"), help="contact sheets and summary.json"
    )
    parser.add_argument("--size", type=int, default=512, help="frame size of the packs (the longer side)")
    parser.add_argument("--speech-s", type=float, default=SPEECH_S, help="speech rendered per character")
    parser.add_argument(
        "--sweep",
        type=lambda text: [float(f) for f in text.split(",")],
        default=list(SWEEP),
        help="portrait scales of the smallest-face sweep (comma-separated)",
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip the smallest-face sweep")
    smoke = {"size": 320, "speech_s": 2.0, "sweep": [0.25]}  # 320: the full-body mouth needs 10 px
    args = parse_args(parser, argv, smoke=smoke)
    summary = run(args.out, size=args.size, speech_s=args.speech_s, sweep=[] if args.no_sweep else args.sweep)
    finish(summary, args.out / "summary.json", smoke=args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
