"""Per-avatar preparation, done once and cached on disk like an Essence pack.

A face image becomes a ``PreparedAvatar``: the LivePortrait crop (``geometry``) of the face the farm's
own rig finds, the appearance feature volume f_s and the motion extractor's reading of the source
(pose, expression, canonical keypoints), the eye-openness condition, and the paste-back canvas. A
session start then costs no extractor work: the engine loads this from memory or disk and uploads
f_s to its device.

The cache lives under ``<data_dir>/learned-avatars/`` as one ``.npz`` per avatar (no pickles), named by
the SHA-256 of the image pixels and a key of everything the result depends on: the weights of the
two per-avatar graphs, the graph-set and geometry versions, and the output size. Writes go to a
temporary file renamed into place, so a reader never sees half an avatar.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from farm.render.learned.geometry import GEOMETRY_VERSION, Canvas
from farm.render.learned.motion import SourceMotion
from farm.render.learned.signatures import FEATURE_SHAPE, GRAPH_SET_VERSION

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
Extract = Callable[[np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]]
"""(1, 3, 256, 256) crop → (f_s (32, 16, 64, 64), motion_extractor outputs for that one image)."""


@dataclass(frozen=True, slots=True)
class PreparedAvatar:
    """Everything a session needs about one face, on the host."""

    image_hash: str
    weights_key: str
    feature: np.ndarray  # (32, 16, 64, 64) float16 appearance volume
    source: SourceMotion
    eye_open: np.ndarray  # (2,) float32
    eye_ball: np.ndarray  # (6,) float32 (zeros: the 68-point rig has no iris points)
    canvas: Canvas

    @property
    def key(self) -> str:
        return cache_key(self.image_hash, self.weights_key, self.canvas.size)

    @property
    def nbytes(self) -> int:
        return int(self.feature.nbytes + self.canvas.nbytes + 2048)


def image_hash(image_rgb: np.ndarray) -> str:
    image = np.ascontiguousarray(image_rgb)
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def cache_key(image_digest: str, weights_key: str, size: int) -> str:
    versions = f"g{GRAPH_SET_VERSION}-x{GEOMETRY_VERSION}-f{CACHE_FORMAT}-s{size}"
    return hashlib.sha256(f"{image_digest}:{weights_key}:{versions}".encode()).hexdigest()[:32]


def files_key(paths: list[Path]) -> str:
    """SHA-256 over the bytes of ``paths`` (the per-avatar graphs: a few MB to ~120 MB)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def eye_openness(points: np.ndarray) -> np.ndarray:
    """[left, right] lid gap over eye width from 68 points, scaled to the reference's 3-gap measure.

    The reference sums three lid gaps of MediaPipe's dense eye contour; the iBUG eye has two
    (37-41, 38-40), so their sum is scaled by 3/2 to land in the same range."""
    pts = np.asarray(points, np.float64)

    def one(a: int) -> float:
        width = float(np.linalg.norm(pts[a + 3] - pts[a])) or 1.0
        gaps = np.linalg.norm(pts[a + 1] - pts[a + 5]) + np.linalg.norm(pts[a + 2] - pts[a + 4])
        return float(1.5 * gaps / width)

    return np.array([one(36), one(42)], np.float32)


def prepare(image_rgb: np.ndarray, extract: Extract, size: int, weights_key: str) -> PreparedAvatar:
    """Detect, crop, extract and frame one face (raises NoFaceFound / InvalidImage)."""
    from farm.render.landmarks import as_rgb_uint8, detect_face
    from farm.render.learned.geometry import crop_image, extractor_input, liveportrait_crop, make_canvas
    from farm.render.learned.signatures import IMAGE_SIZE

    image = as_rgb_uint8(image_rgb)
    face = detect_face(image)
    crop = liveportrait_crop(face.points)
    feature, motion = extract(extractor_input(crop_image(image, crop), IMAGE_SIZE))
    return PreparedAvatar(
        image_hash=image_hash(image),
        weights_key=weights_key,
        feature=np.asarray(feature, np.float16).reshape(FEATURE_SHAPE),
        source=SourceMotion.from_outputs(motion),
        eye_open=eye_openness(face.points),
        eye_ball=np.zeros(6, np.float32),
        canvas=make_canvas(image, crop, size),
    )


def synthetic(seed: int, size: int, extract: Extract | None = None) -> PreparedAvatar:
    """A face-free avatar for throughput runs (no detector, no OpenCV): random crop and background,
    identity framing. With ``extract`` the extractors run on the random crop."""
    from farm.render.learned.geometry import CROP_SIZE, Crop, canvas_geometry

    rng = np.random.default_rng(seed)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the "image" is the crop itself
    crop = Crop(matrix=identity, centre=np.array([CROP_SIZE / 2 - 0.5] * 2), side=float(CROP_SIZE))
    grid, mask = canvas_geometry(crop, size)
    image = rng.random((1, 3, 256, 256), dtype=np.float32)
    if extract is not None:
        feature, motion = extract(image)
    else:
        feature = rng.standard_normal(FEATURE_SHAPE).astype(np.float32)
        motion = {k: rng.standard_normal(n).astype(np.float32) * 0.1 for k, n in _MOTION_SIZES.items()}
        motion["scale"] = np.ones(1, np.float32)
    return PreparedAvatar(
        image_hash=f"synthetic-{seed}",
        weights_key="synthetic",
        feature=np.asarray(feature, np.float16).reshape(FEATURE_SHAPE),
        source=SourceMotion.from_outputs(motion),
        eye_open=np.array([0.3, 0.3], np.float32),
        eye_ball=np.zeros(6, np.float32),
        canvas=Canvas(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), grid, mask),
    )


_MOTION_SIZES = {"pitch": 66, "yaw": 66, "roll": 66, "t": 3, "exp": 63, "scale": 1, "kp": 63}


class AvatarCache:
    """Prepared avatars on disk (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def load(self, key: str) -> PreparedAvatar | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != CACHE_FORMAT:
                    return None
                motion = {k: data[f"source_{k}"] for k in _MOTION_SIZES}
                return PreparedAvatar(
                    image_hash=meta["image_hash"],
                    weights_key=meta["weights_key"],
                    feature=data["feature"],
                    source=SourceMotion.from_outputs(motion),
                    eye_open=data["eye_open"],
                    eye_ball=data["eye_ball"],
                    canvas=Canvas(data["background"], data["grid"], data["mask"]),
                )
        except (OSError, ValueError, KeyError):
            log.warning("unreadable learned-avatar cache entry; preparing again", extra={"path": str(path)})
            return None

    def save(self, avatar: PreparedAvatar) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(avatar.key)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        meta = {"format": CACHE_FORMAT, "image_hash": avatar.image_hash, "weights_key": avatar.weights_key}
        arrays = {f"source_{k}": v for k, v in avatar.source.arrays().items()}
        arrays.update(
            meta=np.array(json.dumps(meta)),
            feature=avatar.feature,
            eye_open=avatar.eye_open,
            eye_ball=avatar.eye_ball,
            background=avatar.canvas.background,
            grid=avatar.canvas.grid,
            mask=avatar.canvas.mask,
        )
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(path)
        return path
