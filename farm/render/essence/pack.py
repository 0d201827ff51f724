"""The Essence pack on disk: ``.npy`` members plus ``manifest.json`` (see docs/essence-pack.md).

Each array is one uncompressed ``.npy`` file, memory-mapped read-only on load, so a pack loads in
milliseconds and every session of a process shares the same pages. The manifest records the format
version and a SHA-256 per member; ``load_pack`` refuses a wrong version
(``PackVersionMismatch``) and a missing, truncated or altered member (``PackError``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from farm.kernel.errors import PackError, PackVersionMismatch
from farm.render.essence.bank import EyeState, MouthShape

PACK_FORMAT = "farm-essence-pack"
PACK_VERSION = 2  # 2: eye patches (blink, gaze), head-nudge mask, articulated mouth shapes with flags
MANIFEST = "manifest.json"
FRAME_ENCODING = "i420"  # base frames: planar Y (H rows) then U and V (H/2 x W/2 each), OpenCV's I420


ShapeInfo = MouthShape
"""One mouth shape of the bank, as the manifest declares it (``farm.render.essence.bank``)."""


@dataclass(frozen=True, slots=True)
class ClipInfo:
    """A clip of base frames (the idle loop or a gesture): name and length in frames."""

    name: str
    frames: int


@dataclass(frozen=True, slots=True)
class EssencePack:
    """A loaded pack: read-only arrays (memory-mapped) and the manifest."""

    path: Path
    manifest: dict[str, Any]
    frames: dict[str, np.ndarray]  # clip name -> (n, 3H/2, W) uint8 I420 base frames ("idle" included)
    poses: dict[str, np.ndarray]  # clip name -> (n, 2, 3) float32 head matrices (portrait -> frame)
    smile: dict[str, np.ndarray]  # clip name -> (n,) float32 smile level of each base frame
    patches: np.ndarray  # (levels, shapes, h, w, 3) uint8 mouth patches in portrait coordinates
    mask: np.ndarray  # (h, w) float32 feathered mask of a patch
    centres: np.ndarray  # (shapes, 2) float32 feature-space centres (openness, width)
    shapes: tuple[MouthShape, ...]
    gestures: tuple[ClipInfo, ...]
    eye_patches: np.ndarray  # (eyes, states, h, w, 3) uint8 eye patches in portrait coordinates
    eye_mask: np.ndarray  # (h, w) float32 feathered mask of an eye patch
    eye_origins: tuple[tuple[int, int], ...]  # (x0, y0) of each eye's patch in the portrait
    eye_states: tuple[EyeState, ...]  # state 0 is "open" (the base frames' own eyes)
    head_mask: np.ndarray  # (h, w) float32 head-motion weight over ``head_box`` (for beats)
    head_box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in the portrait
    nbytes: int = field(default=0)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height)."""
        width, height = self.manifest["frame_size"]
        return (int(width), int(height))

    def clip_length(self, clip: str) -> int:
        """Frames in a clip ("idle" or a gesture name)."""
        return int(self.frames[clip].shape[0])

    def base_frame(self, clip: str, index: int) -> np.ndarray:
        """Base frame ``index`` of ``clip`` decoded to a new (H, W, 3) uint8 RGB array."""
        return cv2.cvtColor(np.asarray(self.frames[clip][index]), cv2.COLOR_YUV2RGB_I420)

    @property
    def mouth_origin(self) -> tuple[int, int]:
        """(x0, y0) of the mouth region in portrait coordinates."""
        x0, y0 = self.manifest["mouth"]["region"][:2]
        return (int(x0), int(y0))

    @property
    def smile_levels(self) -> np.ndarray:
        return np.asarray(self.manifest["mouth"]["smile_levels"], dtype=np.float32)


def _digest(array: np.ndarray) -> str:
    data = np.ascontiguousarray(array)
    return hashlib.sha256(data.reshape(-1).view(np.uint8).data).hexdigest()


def write_pack(out_dir: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write members and a manifest with their checksums; the manifest is written last (atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    members: dict[str, dict[str, Any]] = {}
    for name, array in arrays.items():
        data = np.ascontiguousarray(array)
        np.save(out_dir / f"{name}.npy", data, allow_pickle=False)
        members[name] = {
            "file": f"{name}.npy",
            "dtype": str(data.dtype),
            "shape": list(data.shape),
            "sha256": _digest(data),
        }
    full = {"format": PACK_FORMAT, "version": PACK_VERSION, **manifest, "members": members}
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(full, indent=1))
    tmp.replace(out_dir / MANIFEST)
    return out_dir


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise PackError("pack has no manifest", path=str(path)) from exc
    except (OSError, ValueError) as exc:
        raise PackError("pack manifest is unreadable", path=str(path)) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != PACK_FORMAT:
        raise PackError("not an Essence pack", path=str(path))
    if manifest.get("version") != PACK_VERSION or manifest.get("frame_encoding") != FRAME_ENCODING:
        raise PackVersionMismatch(
            f"pack format version {manifest.get('version')!r} ({manifest.get('frame_encoding')!r} frames), "
            f"this engine reads version {PACK_VERSION} ({FRAME_ENCODING!r}): rebuild the agent's pack "
            "from its image (version 2 added eye patches and articulated mouth shapes)",
            path=str(path),
        )
    return manifest


def _load_member(path: Path, name: str, meta: dict[str, Any], verify: bool) -> np.ndarray:
    try:
        array = np.load(path / meta["file"], mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, KeyError) as exc:
        raise PackError(f"pack member {name!r} is missing or unreadable", path=str(path)) from exc
    if list(array.shape) != meta["shape"] or str(array.dtype) != meta["dtype"]:
        raise PackError(f"pack member {name!r} has the wrong shape or type", path=str(path))
    if verify and _digest(array) != meta["sha256"]:
        raise PackError(f"pack member {name!r} fails its checksum", path=str(path))
    return array


def _box(values: list[int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(v) for v in values)
    return (x0, y0, x1, y1)


def load_pack(path: Path, *, verify: bool = True) -> EssencePack:
    """Open a pack read-only (memory-mapped); ``verify`` checks every member's SHA-256."""
    path = Path(path)
    manifest = _read_manifest(path)
    members = manifest.get("members", {})
    arrays = {name: _load_member(path, name, meta, verify) for name, meta in members.items()}
    try:
        gestures = tuple(ClipInfo(g["name"], int(g["frames"])) for g in manifest["gestures"])
        shapes = tuple(MouthShape.from_manifest(s) for s in manifest["mouth"]["shapes"])
        eyes = manifest["eyes"]
        clips = ["idle", *(g.name for g in gestures)]
        pack = EssencePack(
            path=path,
            manifest=manifest,
            frames={c: arrays[f"frames_{c}"] for c in clips},
            poses={c: arrays[f"poses_{c}"] for c in clips},
            smile={c: arrays[f"smile_{c}"] for c in clips},
            patches=arrays["mouth_patches"],
            mask=arrays["mouth_mask"],
            centres=arrays["feature_centres"],
            shapes=shapes,
            gestures=gestures,
            eye_patches=arrays["eye_patches"],
            eye_mask=arrays["eye_mask"],
            eye_origins=tuple((int(x), int(y)) for x, y in eyes["origins"]),
            eye_states=tuple(EyeState.from_manifest(e) for e in eyes["states"]),
            head_mask=arrays["head_mask"],
            head_box=_box(manifest["head"]["box"]),
            nbytes=sum(int(a.nbytes) for a in arrays.values()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PackError("pack manifest is incomplete", path=str(path)) from exc
    if pack.patches.shape[1] != len(shapes) or len(shapes) != pack.centres.shape[0]:
        raise PackError("pack mouth bank does not match its manifest", path=str(path))
    if pack.eye_patches.shape[:2] != (len(pack.eye_origins), len(pack.eye_states)):
        raise PackError("pack eye patches do not match its manifest", path=str(path))
    width, height = pack.frame_size
    if any(f.shape[1:] != (height * 3 // 2, width) for f in pack.frames.values()):
        raise PackError("pack frames do not match the manifest's frame size", path=str(path))
    return pack
