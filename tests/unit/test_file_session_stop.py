"""A stop request ends an MP4 session while its clip is still being decoded: the rest of the clip is
never decoded, and the worker's event loop kept renewing the lease (which carries the stop flag)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from farm.domain import ModelKind, Session, SessionState
from farm.render.base import AvatarFrame, AvatarSource
from farm.render.pool import ModelPool
from farm.sessions.memory import MemorySessionStore
from farm.sessions.runner import SessionRunner
from farm.settings import Settings
from farm.stream.base import SessionIO
from farm.stream.file_input import FileInput
from tests.support.helpers import flac_bytes
from tests.support.tone_engine import ToneEngine

pytestmark = pytest.mark.unit

CLIP_S = 240.0


class CountingSink:
    """A file-like (not real-time) sink that counts frames and signals the first."""

    realtime = False

    def __init__(self) -> None:
        self.frames = 0
        self.first = asyncio.Event()
        self.closed = False

    async def start(self) -> None:
        pass

    async def write(self, frame: AvatarFrame) -> None:
        self.frames += 1
        self.first.set()

    async def aclose(self) -> None:
        self.closed = True


async def test_a_stop_request_ends_a_file_session_before_its_clip_is_decoded(
    settings: Settings, tmp_path: Path
) -> None:
    clip = tmp_path / "long.flac"
    clip.write_bytes(flac_bytes(CLIP_S, 48_000))
    store = MemorySessionStore()
    pool = ModelPool([ModelKind.ESSENCE], lambda _: ToneEngine())
    pool.prewarm(timeout_s=10)
    new = Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE, avatar_id="A1")
    session, _ = store.create(new)
    lease = store.claim(session.id, "w1", ttl_s=settings.lease_ttl_s)
    assert lease is not None
    source, sink = FileInput(clip, max_s=CLIP_S, chunk_s=0.05), CountingSink()
    run = SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=settings,
        io_factory=lambda *_: SessionIO(source, sink),
        resolve_avatar=lambda s: AvatarSource(key=s.avatar_id or s.id),
    ).run
    task = asyncio.create_task(run())
    await asyncio.wait_for(sink.first.wait(), 10)
    store.request_stop(session.id)
    result = await asyncio.wait_for(task, 10)

    assert result.session is not None and result.session.state is SessionState.ENDED
    assert result.session.history[-1].reason == "stop requested"
    assert 0 < source.seconds_read < CLIP_S  # decoding stopped with the session
    assert 0 < sink.frames < CLIP_S * 25
    assert sink.closed
