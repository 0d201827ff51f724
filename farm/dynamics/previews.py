"""Gesture previews: one short H.264 MP4 per gesture clip of an Essence pack, for the catalogue.

The build task calls ``write_gesture_previews(pack, previews_dir(settings.data_dir, agent_id))``
after it wrote the pack; the API only serves the files. Previews are silent, 25 fps, scaled down so
their longer side is at most ``max_side_px`` (even dimensions, yuv420p: every browser plays them).
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from farm.dynamics.catalogue import GESTURE_NAME_RE

log = logging.getLogger(__name__)

PREVIEW_FPS = 25
MAX_SIDE_PX = 256


class _Clip(Protocol):
    @property
    def name(self) -> str: ...


class GesturePack(Protocol):
    """What previews need of ``farm.render.essence.pack.EssencePack``."""

    @property
    def gestures(self) -> Sequence[_Clip]: ...

    def clip_length(self, clip: str) -> int: ...

    def base_frame(self, clip: str, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        ...


def write_gesture_previews(
    pack: GesturePack, out_dir: Path, *, max_side_px: int = MAX_SIDE_PX
) -> dict[str, Path]:
    """Write ``<out_dir>/<gesture>.mp4`` for every gesture clip of ``pack``; return name → path.

    Each file is written to a temporary name and renamed, so the API never serves a half-written MP4.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for clip in pack.gestures:
        if not GESTURE_NAME_RE.fullmatch(clip.name):
            log.warning("gesture name is not file-safe; no preview", extra={"gesture": clip.name})
            continue
        target = out_dir / f"{clip.name}.mp4"
        frames = (pack.base_frame(clip.name, i) for i in range(pack.clip_length(clip.name)))
        encode_clip(frames, target, max_side_px=max_side_px)
        written[clip.name] = target
    return written


def preview_size(width: int, height: int, max_side_px: int) -> tuple[int, int]:
    """(width, height) scaled to fit ``max_side_px``, both even (yuv420p needs it)."""
    scale = min(1.0, max_side_px / max(width, height))
    return (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))


def encode_clip(frames: Iterable[np.ndarray], target: Path, *, max_side_px: int = MAX_SIDE_PX) -> None:
    """Encode (H, W, 3) uint8 RGB frames (at least one) as an H.264 MP4 at 25 fps, atomically."""
    import av

    images = iter(frames)
    first = next(images, None)
    if first is None or first.ndim != 3 or first.shape[2] != 3:
        raise ValueError("a clip is at least one (H, W, 3) RGB frame")
    width, height = preview_size(int(first.shape[1]), int(first.shape[0]), max_side_px)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".mp4")
    os.close(fd)
    try:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=PREVIEW_FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = Fraction(1, PREVIEW_FPS)
            stream.options = {"preset": "veryfast", "crf": "28", "movflags": "+faststart"}
            for image in itertools.chain([first], images):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                for packet in stream.encode(frame.reformat(width, height, format="yuv420p")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
