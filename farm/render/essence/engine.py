"""``EssenceEngine``: the shared, prewarmed part of the Essence model in one worker process.

It loads packs (memory-mapped, shared by every session) and opens cheap per-session renderers.
``prewarm`` builds a tiny avatar from the sample portrait in a temporary directory and renders a
few frames with speech, so the landmark model, the numpy/OpenCV code paths and the pack reader are
all warm before the worker reports READY.

Pack checksums are verified when the builder writes a pack and on this process's first load of it
(keyed by the manifest's identity: a rebuilt pack is verified again); later loads of the same pack
(after an LRU eviction) only map it, so a warm load pays no 128 MB SHA-256 pass. Pages are read in
lazily by the memory map as frames are rendered.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from farm.kernel.errors import PackError
from farm.render.base import AvatarSource
from farm.render.essence.builder import build_pack
from farm.render.essence.pack import MANIFEST, load_pack
from farm.render.essence.renderer import EssenceRenderer, LoadedAvatar
from farm.render.landmarks import sample_portrait
from farm.render.speech.model import load_model

PREWARM_SIZE = 128
"""The prewarm avatar's side: small, since every path it warms is the same at any size. 192 built in
1.68 s of CPU, 128 in 0.99 s; an Essence worker was READY 4.15 s after its start at 192, 3.74 s at
128 (medians of 3, 2-core Xeon VM, 2026-12-07)."""


class EssenceEngine:
    """Implements ``farm.render.base.RenderEngine`` for Essence packs (CPU, numpy + OpenCV)."""

    name = "essence"

    def __init__(self, *, verify_packs: bool = True) -> None:
        self._verify = verify_packs
        self._verified: set[tuple[str, int, int, int]] = set()  # manifest (path, inode, mtime, size)
        self.prewarm_s: float | None = None

    @property
    def backend(self) -> str:
        return "numpy"

    def prewarm(self) -> None:
        started = time.perf_counter()
        load_model()  # the viseme model every session's mouth reads (numpy, shared)
        with tempfile.TemporaryDirectory(prefix="essence-prewarm-") as tmp:
            pack_dir = build_pack(sample_portrait(), Path(tmp) / "pack", size=PREWARM_SIZE)
            avatar = LoadedAvatar(load_pack(pack_dir, verify=self._verify))
            renderer = EssenceRenderer(avatar, "prewarm")
            t = np.arange(3 * 640) / 16_000.0
            renderer.push_audio((0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32), 16_000)
            renderer.flush()
            renderer.trigger(avatar.gestures[0])
            for _ in range(5):
                renderer.next_frame()
            renderer.close()
        self.prewarm_s = time.perf_counter() - started

    def load_avatar(self, source: AvatarSource) -> LoadedAvatar:
        if source.pack_path is None:
            raise PackError(
                "an Essence avatar needs a pack (build one from the portrait first)", key=source.key
            )
        identity = _manifest_identity(Path(source.pack_path))
        verify = self._verify and identity not in self._verified
        avatar = LoadedAvatar(load_pack(source.pack_path, verify=verify))
        if verify and identity is not None:
            self._verified.add(identity)
        return avatar

    def avatar_size_mb(self, avatar: object) -> float:
        if not isinstance(avatar, LoadedAvatar):
            raise TypeError("not an Essence avatar")
        return avatar.nbytes / 1e6

    def open_session(self, avatar: object, session_id: str) -> EssenceRenderer:
        if not isinstance(avatar, LoadedAvatar):
            raise TypeError("not an Essence avatar")
        return EssenceRenderer(avatar, session_id)

    def close(self) -> None:
        """Nothing to release: packs are memory-mapped and dropped with their last reference."""


def _manifest_identity(pack_dir: Path) -> tuple[str, int, int, int] | None:
    """What identifies one build of a pack (packs are written once and renamed into place)."""
    try:
        stat = (pack_dir / MANIFEST).stat()
    except OSError:
        return None  # load_pack reports the missing manifest
    return (str(pack_dir.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_size)
