"""A file session's clip is decoded while it renders: a stop request ends the session with the rest of
the clip never decoded (the worker's event loop kept renewing the lease, which carries the stop
flag), and the worker re-checks the API's limits: the sample rate before any frame, the length as
soon as the decoded clip passes it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.settings import Settings
from farm.render.base import AvatarFrame, AvatarSource
from farm.render.pool import ModelPool
from farm.sessions.memory import MemorySessionStore
from farm.sessions.runner import SessionRunner
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


def start_runner(settings: Settings, source: FileInput, sink: CountingSink) -> tuple[SessionRunner, Session]:
    store = MemorySessionStore()
    pool = ModelPool([ModelKind.ESSENCE], lambda _: ToneEngine())
    pool.prewarm(timeout_s=10)
    new = Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE, avatar_id="A1")
    session, _ = store.create(new)
    lease = store.claim(session.id, "w1", ttl_s=settings.lease_ttl_s)
    assert lease is not None
    runner = SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=settings,
        io_factory=lambda *_: SessionIO(source, sink),
        resolve_avatar=lambda s: AvatarSource(key=s.avatar_id or s.id),
    )
    return runner, session


async def test_a_stop_request_ends_a_file_session_before_its_clip_is_decoded(
    settings: Settings, tmp_path: Path
) -> None:
    clip = tmp_path / "long.flac"
    clip.write_bytes(flac_bytes(CLIP_S, 48_000))
    source, sink = FileInput(clip, max_s=CLIP_S, chunk_s=0.05), CountingSink()
    runner, session = start_runner(settings, source, sink)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(sink.first.wait(), 10)
    runner.store.request_stop(session.id)
    result = await asyncio.wait_for(task, 10)

    assert result.session is not None and result.session.state is SessionState.ENDED
    assert result.session.history[-1].reason == "stop requested"
    assert 0 < source.seconds_read < CLIP_S  # decoding stopped with the session
    assert 0 < sink.frames < CLIP_S * 25
    assert sink.closed


async def test_a_clip_over_the_workers_sample_rate_limit_fails_before_any_frame(
    settings: Settings, tmp_path: Path
) -> None:
    clip = tmp_path / "hi-rate.flac"
    clip.write_bytes(flac_bytes(1.0, 96_000))
    sink = CountingSink()
    runner, _ = start_runner(settings, FileInput(clip, max_s=10, max_sample_rate_hz=48_000), sink)
    result = await asyncio.wait_for(runner.run(), 10)

    assert result.session is not None and result.session.state is SessionState.FAILED
    assert result.session.failure is not None and result.session.failure["code"] == "PAYLOAD_TOO_LARGE"
    assert sink.frames == 0


async def test_a_clip_longer_than_the_workers_limit_fails_once_decoding_passes_it(
    settings: Settings, tmp_path: Path
) -> None:
    clip = tmp_path / "long.flac"
    clip.write_bytes(flac_bytes(3.0, 16_000))
    source = FileInput(clip, max_s=1.0, chunk_s=0.1)
    runner, _ = start_runner(settings, source, CountingSink())
    result = await asyncio.wait_for(runner.run(), 10)

    assert result.session is not None and result.session.state is SessionState.FAILED
    assert result.session.failure is not None and result.session.failure["code"] == "PAYLOAD_TOO_LARGE"
    assert "longer than the 1 s limit" in result.session.failure["message"]
    assert 1.0 < source.seconds_read < 1.5  # stopped within one codec frame past the limit
