"""One file session rendered in this process through the worker's own path, for benches that need a
session's undisturbed output or its memory: a ``SessionRunner`` over an Essence ``ModelPool``, the
worker's file-session wiring (``FileSessionIo``: the clip as a ``FileInput`` with the settings'
limits, an ``Mp4Sink`` under ``settings.output_dir``) and an in-memory session store.

The session id is the caller's: an Essence session's blinks and glances are seeded by it
(``farm.render.life``), so the output of a farm session is reproduced only under its own id.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from farm.infra.blobs import BlobStore
from farm.kernel.domain import ModelKind, Session
from farm.kernel.settings import Settings
from farm.render.base import AvatarSource
from farm.render.essence import EssenceEngine
from farm.render.pool import ModelPool
from farm.sessions.memory import MemorySessionStore
from farm.sessions.runner import SessionRunner
from farm.worker.wiring import FileSessionIo

TENANT = "bench"
WORKER_ID = "bench-worker"


@dataclass(frozen=True)
class Rendered:
    """What the session ended as, and where its MP4 is."""

    session: Session
    frames: int
    output: Path


def essence_pool(timeout_s: float = 120.0) -> ModelPool:
    """A prewarmed Essence pool, as a worker process holds one."""
    pool = ModelPool([ModelKind.ESSENCE], lambda _: EssenceEngine())
    pool.prewarm(timeout_s=timeout_s)
    return pool


class FileSessions:
    """Renders file sessions over one pool and one avatar pack, as a worker would."""

    def __init__(self, settings: Settings, pool: ModelPool, avatar: AvatarSource) -> None:
        self.settings = settings
        self.pool = pool
        self.avatar = avatar
        self.blobs = BlobStore(settings.blob_dir)
        self.store = MemorySessionStore()
        self._io = FileSessionIo(settings, self.blobs)

    def render(self, session_id: str, clip: Path) -> Rendered:
        """Run session ``session_id`` on ``clip`` (any audio file the API accepts) to its end."""
        audio_ref = self.blobs.put(clip.read_bytes(), clip.suffix)
        session = Session(
            id=session_id,
            tenant=TENANT,
            model=ModelKind.ESSENCE,
            avatar_id=self.avatar.key,
            audio_ref=audio_ref,
        )
        created, _ = self.store.create(session)
        lease = self.store.claim(created.id, WORKER_ID, ttl_s=self.settings.lease_ttl_s)
        if lease is None:
            raise RuntimeError(f"session {session_id} could not be claimed")
        runner = SessionRunner(
            lease=lease,
            store=self.store,
            pool=self.pool,
            settings=self.settings,
            io_factory=self._io,
            resolve_avatar=lambda _: self.avatar,
        )
        result = asyncio.run(runner.run())
        return Rendered(self.store.get(session_id), result.frames, self._io.output_path(session_id))
