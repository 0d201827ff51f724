"""SessionRunner drives a claimed session through its states with an in-memory store and a real renderer."""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import av
import numpy as np
import pytest

from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.errors import BackendUnavailable, NotFound
from farm.kernel.settings import Settings
from farm.render.base import SAMPLES_PER_FRAME, AvatarFrame, AvatarSource
from farm.render.pool import ModelPool
from farm.sessions.base import Lease
from farm.sessions.memory import MemorySessionStore
from farm.sessions.runner import SessionRunner
from farm.stream.base import Gesture, InputClosed, InputEvent, SegmentEnd, SessionIO, SpeechChunk
from farm.stream.file_input import FileInput
from farm.stream.mp4 import Mp4Sink
from farm.stream.pump import LEAD_S
from tests.support.tone_engine import ToneEngine

pytestmark = pytest.mark.unit

LEGAL_PATH = [
    SessionState.QUEUED,
    SessionState.ASSIGNED,
    SessionState.STARTING,
    SessionState.STREAMING,
    SessionState.ENDING,
    SessionState.ENDED,
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ListSink:
    """A real-time sink that keeps frames in memory (the runner paces it at 25 fps)."""

    def __init__(self, realtime: bool = True) -> None:
        self.frames: list[AvatarFrame] = []
        self._realtime = realtime
        self.closed = False
        self.first = asyncio.Event()

    @property
    def realtime(self) -> bool:
        return self._realtime

    async def start(self) -> None:
        pass

    async def write(self, frame: AvatarFrame) -> None:
        self.frames.append(frame)
        self.first.set()

    async def aclose(self) -> None:
        self.closed = True


def tone(seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 200 * t) * 10_000).astype(np.int16)


Setup = tuple[MemorySessionStore, ModelPool, Session, Lease]


def setup(settings: Settings, clock: Clock | None = None, store: MemorySessionStore | None = None) -> Setup:
    """A prewarmed ToneEngine pool and one session claimed by ``w1`` in ``store`` (a fresh one)."""
    store = store or (MemorySessionStore(clock=clock) if clock else MemorySessionStore())
    pool = ModelPool([ModelKind.ESSENCE], lambda _: ToneEngine())
    pool.prewarm(timeout_s=10)
    new = Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE, avatar_id="A1")
    session, _ = store.create(new)
    lease = store.claim(session.id, "w1", ttl_s=settings.lease_ttl_s)
    assert lease is not None
    return store, pool, session, lease


def runner(
    settings: Settings,
    store: MemorySessionStore,
    pool: ModelPool,
    lease: Lease,
    io: SessionIO,
    *,
    resolve_avatar: Callable[[Session], AvatarSource] = lambda s: AvatarSource(key=s.avatar_id or s.id),
) -> SessionRunner:
    return SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=settings,
        io_factory=lambda *_: io,
        resolve_avatar=resolve_avatar,
    )


async def test_a_file_session_renders_every_audio_frame_into_an_mp4(
    settings: Settings, tmp_path: Path
) -> None:
    store, pool, session, lease = setup(settings)
    pcm = tone(1.3, rate=22_050)
    out = tmp_path / "s.mp4"
    io = SessionIO(FileInput(pcm=pcm, sample_rate=22_050), Mp4Sink(out), output=str(out))

    result = await runner(settings, store, pool, lease, io).run()

    expected = math.ceil(round(1.3 * 16_000) / SAMPLES_PER_FRAME)
    assert result.frames == expected
    final = store.get(session.id)
    assert [h.state for h in final.history] == LEGAL_PATH
    assert final.output == str(out)
    assert {"model_ready", "avatar_ready", "sink_ready", "first_frame", "total"} <= final.timings_ms.keys()
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == expected
    assert store.orphaned() == []
    assert not store.renew(lease, ttl_s=1)  # released


async def test_a_missing_avatar_fails_the_session_with_its_reason(settings: Settings) -> None:
    store, pool, _, lease = setup(settings)
    io = SessionIO(FileInput(pcm=tone(0.2), sample_rate=16_000), ListSink(realtime=False))

    def missing(_: Session) -> AvatarSource:
        raise NotFound("agent A1 has no pack")

    run = SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=settings,
        io_factory=lambda *_: io,
        resolve_avatar=missing,
    ).run
    outcome = await run()
    assert outcome.session is not None
    assert outcome.session.state is SessionState.FAILED
    assert outcome.session.failure == {"code": "NOT_FOUND", "message": "agent A1 has no pack"}


async def test_a_stop_request_ends_a_realtime_session(settings: Settings) -> None:
    store, pool, session, lease = setup(settings)
    sink = ListSink(realtime=True)
    io = SessionIO(FileInput(pcm=tone(30.0), sample_rate=16_000), sink)
    task = asyncio.create_task(runner(settings, store, pool, lease, io).run())
    await asyncio.wait_for(sink.first.wait(), 5)
    store.request_stop(session.id)
    result = await asyncio.wait_for(task, 5)
    assert result.session is not None and result.session.state is SessionState.ENDED
    assert result.session.history[-1].reason == "stop requested"
    assert 0 < len(sink.frames) < 30 * 25
    assert sink.closed


async def test_a_realtime_session_is_paced_at_25_fps(settings: Settings) -> None:
    store, pool, _, lease = setup(settings)
    sink = ListSink(realtime=True)
    io = SessionIO(FileInput(pcm=tone(0.4), sample_rate=16_000), sink)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await runner(settings, store, pool, lease, io).run()
    speaking = [f for f in sink.frames if f.speaking]
    assert len(speaking) == 10  # a room may show idle frames before the first audio arrives
    assert result.frames == len(sink.frames)
    # ten ticks cannot finish before the ninth deadline, less the pump's lead (the sink's audio queue)
    assert loop.time() - started >= 9 * 0.04 - LEAD_S


async def test_a_lost_lease_stops_writing_and_leaves_the_session_to_the_reaper(settings: Settings) -> None:
    clock = Clock()
    fast = settings.model_copy(update={"lease_renew_s": 0.05})
    store, pool, session, lease = setup(fast, clock)
    sink = ListSink(realtime=True)
    io = SessionIO(FileInput(pcm=tone(30.0), sample_rate=16_000), sink)
    task = asyncio.create_task(runner(fast, store, pool, lease, io).run())
    await asyncio.wait_for(sink.first.wait(), 5)
    clock.now += 3600  # the lease expires as if this worker had stalled
    result = await asyncio.wait_for(task, 5)
    assert result.lease_lost and result.session is None
    written = len(sink.frames)
    assert store.get(session.id).state is SessionState.STREAMING
    assert store.orphaned() == [session.id]
    assert sink.closed and len(sink.frames) == written


async def test_the_session_cap_ends_a_session(settings: Settings) -> None:
    capped = settings.model_copy(update={"max_session_s": 0.2})
    store, pool, _, lease = setup(capped)
    io = SessionIO(FileInput(pcm=tone(30.0), sample_rate=16_000), ListSink(realtime=True))
    result = await asyncio.wait_for(runner(capped, store, pool, lease, io).run(), 5)
    assert result.session is not None and result.session.state is SessionState.ENDED
    assert result.session.history[-1].reason == "max session duration reached"


async def test_the_real_essence_engine_renders_a_file_session(
    settings: Settings, tmp_path: Path, essence_pack_dir: Path
) -> None:
    from farm.render.essence import EssenceEngine

    store = MemorySessionStore()
    pool = ModelPool([ModelKind.ESSENCE], lambda _: EssenceEngine())
    pool.prewarm(timeout_s=60, hot=[(ModelKind.ESSENCE, AvatarSource(key="A1", pack_path=essence_pack_dir))])
    session, _ = store.create(
        Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE, avatar_id="A1")
    )
    lease = store.claim(session.id, "w1", ttl_s=settings.lease_ttl_s)
    assert lease is not None
    out = tmp_path / "essence.mp4"
    io = SessionIO(FileInput(pcm=tone(0.8), sample_rate=16_000), Mp4Sink(out), output=str(out))
    run = SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=settings,
        io_factory=lambda *_: io,
        resolve_avatar=lambda s: AvatarSource(key="A1", pack_path=essence_pack_dir),
    ).run
    result = await run()
    assert result.frames == 20
    assert store.get(session.id).state is SessionState.ENDED
    assert pool.stats().avatar_hits >= 1  # the hot avatar was reused, not reloaded
    with av.open(str(out)) as container:
        assert container.streams.video[0].width == 256
        assert sum(1 for _ in container.decode(video=0)) == 20


async def test_a_slow_avatar_load_does_not_lose_the_lease(settings: Settings) -> None:
    short = settings.model_copy(update={"lease_ttl_s": 0.3, "lease_renew_s": 0.05})
    store, pool, _, lease = setup(short)
    io = SessionIO(FileInput(pcm=tone(0.2), sample_rate=16_000), ListSink(realtime=False))

    def slow_pack_build(s: Session) -> AvatarSource:
        time.sleep(1.0)  # a pack build: blocking work far longer than the lease TTL
        return AvatarSource(key="A1")

    run = SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=short,
        io_factory=lambda *_: io,
        resolve_avatar=slow_pack_build,
    ).run
    result = await run()
    assert not result.lease_lost
    assert result.session is not None and result.session.state is SessionState.ENDED


async def test_a_draining_worker_hands_the_session_back_to_the_queue(settings: Settings) -> None:
    store, pool, session, lease = setup(settings)
    sink = ListSink(realtime=True)
    resubmitted: list[Session] = []
    io = SessionIO(FileInput(pcm=tone(30.0), sample_rate=16_000), sink)
    session_runner = SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=settings,
        io_factory=lambda *_: io,
        resolve_avatar=lambda s: AvatarSource(key="A1"),
        on_handback=resubmitted.append,
    )
    task = asyncio.create_task(session_runner.run())
    await asyncio.wait_for(sink.first.wait(), 5)
    session_runner.request_handback()
    result = await asyncio.wait_for(task, 5)

    assert result.handed_back and result.session is not None
    assert result.session.state is SessionState.QUEUED
    assert [s.id for s in resubmitted] == [session.id]
    assert store.claim(session.id, "w2", ttl_s=5) is not None  # the lease was released first
    assert sink.closed


class ScriptedInput:
    """Speech, then gestures, then the end of input."""

    def __init__(self, events: list[InputEvent]) -> None:
        self._events = events

    async def start(self) -> None:
        pass

    async def events(self) -> AsyncIterator[InputEvent]:
        for event in self._events:
            yield event

    async def aclose(self) -> None:
        pass


class RecordingAttachment:
    def __init__(self, deliver: Callable[[str], None]) -> None:
        self.deliver = deliver
        self.triggered: list[str] = []
        self.detached = False

    def trigger(self, action: str) -> object:
        self.triggered.append(action)
        self.deliver(action)
        return None

    def detach(self) -> None:
        self.detached = True


async def test_gestures_go_through_dynamics_and_reach_the_renderer(settings: Settings) -> None:
    store, pool, _, lease = setup(settings)
    sink = ListSink(realtime=False)
    events: list[InputEvent] = [
        SpeechChunk(tone(0.4), 16_000),
        Gesture("wave"),
        SegmentEnd(),
        InputClosed("x"),
    ]
    io = SessionIO(ScriptedInput(events), sink)
    attachments: list[RecordingAttachment] = []

    def attach(
        session: Session, gestures: Sequence[str], deliver: Callable[[str], None]
    ) -> RecordingAttachment:
        assert "wave" in gestures
        attachments.append(RecordingAttachment(deliver))
        return attachments[-1]

    result = await SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=settings,
        io_factory=lambda *_: io,
        resolve_avatar=lambda s: AvatarSource(key="A1"),
        attach_dynamics=attach,
    ).run()
    assert result.session is not None and result.session.state is SessionState.ENDED
    assert attachments[0].triggered == ["wave"] and attachments[0].detached
    assert "wave" in [f.gesture for f in sink.frames]


async def test_an_unknown_gesture_is_ignored_not_fatal(settings: Settings) -> None:
    store, pool, _, lease = setup(settings)
    events: list[InputEvent] = [
        SpeechChunk(tone(0.2), 16_000),
        Gesture("moon"),
        SegmentEnd(),
        InputClosed("x"),
    ]
    io = SessionIO(ScriptedInput(events), ListSink(realtime=False))
    result = await runner(settings, store, pool, lease, io).run()
    assert result.session is not None and result.session.state is SessionState.ENDED


class BlinkingStore(MemorySessionStore):
    """A store whose first ``failures`` state changes meet a Redis outage (BackendUnavailable)."""

    def __init__(self, failures: int, *, lands: bool = False) -> None:
        super().__init__()
        self.failures = failures
        self.lands = lands  # the write lands but its reply is lost

    def transition(self, session_id: str, target: SessionState, **kwargs: object) -> Session:  # type: ignore[override]
        if self.failures > 0 and target is SessionState.STREAMING:
            self.failures -= 1
            if self.lands:
                super().transition(session_id, target, **kwargs)  # type: ignore[arg-type]
            raise BackendUnavailable("redis is unavailable: ConnectionError")
        return super().transition(session_id, target, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("lands", [False, True], ids=["write lost", "reply lost"])
async def test_a_redis_blip_during_a_state_change_pauses_the_session_instead_of_failing_it(
    settings: Settings, tmp_path: Path, lands: bool
) -> None:
    store = BlinkingStore(failures=3, lands=lands)
    _, pool, session, lease = setup(settings, store=store)
    out = tmp_path / "s.mp4"
    io = SessionIO(FileInput(pcm=tone(0.4), sample_rate=16_000), Mp4Sink(out), output=str(out))

    result = await runner(settings, store, pool, lease, io).run()

    assert store.failures == (2 if lands else 0)  # a write that landed is found, not repeated
    assert [h.state for h in store.get(session.id).history] == LEGAL_PATH
    assert result.frames == 10


async def test_a_redis_blip_during_the_avatar_lookup_pauses_the_session_instead_of_failing_it(
    settings: Settings, tmp_path: Path
) -> None:
    """The agent's record is read from Redis at start. A session failed there could not record it
    either (Redis is down), stayed STARTING and was rendered again once its lease ran out (the chaos
    layer's Redis restart, 2 runs in 8 on 2026-12-07)."""
    store, pool, session, lease = setup(settings)
    out = tmp_path / "s.mp4"
    io = SessionIO(FileInput(pcm=tone(0.4), sample_rate=16_000), Mp4Sink(out), output=str(out))
    lookups: list[float] = []

    def blinking(s: Session) -> AvatarSource:
        lookups.append(time.monotonic())
        if len(lookups) <= 3:
            raise BackendUnavailable("redis is unavailable: ConnectionError")
        return AvatarSource(key=s.avatar_id or s.id)

    result = await runner(settings, store, pool, lease, io, resolve_avatar=blinking).run()

    assert len(lookups) == 4
    assert [h.state for h in store.get(session.id).history] == LEGAL_PATH
    assert result.frames == 10


class OffLoopStore(MemorySessionStore):
    """Records every store call made on the event loop's thread: with many sessions on one loop, a
    Redis call that blocks there (a partition: up to the socket timeout) would freeze them all."""

    def __init__(self) -> None:
        super().__init__()
        self.loop_thread: int | None = None
        self.on_loop: list[str] = []

    def _note(self, name: str) -> None:
        if threading.get_ident() == self.loop_thread:
            self.on_loop.append(name)

    def transition(self, session_id: str, target: SessionState, **kwargs: object) -> Session:  # type: ignore[override]
        self._note(f"transition→{target.value}")
        return super().transition(session_id, target, **kwargs)  # type: ignore[arg-type]

    def get(self, session_id: str) -> Session:
        self._note("get")
        return super().get(session_id)

    def release(self, lease: Lease) -> None:
        self._note("release")
        super().release(lease)

    def renew_and_check_stop(self, lease: Lease, ttl_s: float) -> tuple[bool, bool]:
        self._note("renew")
        return super().renew_and_check_stop(lease, ttl_s)


@pytest.mark.parametrize("path", ["ends", "fails", "handed back"])
async def test_no_store_call_blocks_the_event_loop(settings: Settings, path: str) -> None:
    store = OffLoopStore()
    _, pool, _, lease = setup(settings, store=store)
    sink = ListSink(realtime=path == "handed back")
    io = SessionIO(FileInput(pcm=tone(30.0 if path == "handed back" else 0.4), sample_rate=16_000), sink)

    def avatar(s: Session) -> AvatarSource:
        if path == "fails":
            raise NotFound("agent A1 has no pack")
        return AvatarSource(key="A1")

    resubmitted: list[Session] = []
    store.loop_thread = threading.get_ident()  # from here on, only the runner calls the store
    session_runner = SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=settings.model_copy(update={"lease_renew_s": 0.05}),
        io_factory=lambda *_: io,
        resolve_avatar=avatar,
        on_handback=resubmitted.append,
    )
    task = asyncio.create_task(session_runner.run())
    if path == "handed back":
        await asyncio.wait_for(sink.first.wait(), 5)
        await asyncio.sleep(0.2)  # a few renewals
        session_runner.request_handback()
    result = await asyncio.wait_for(task, 10)

    expected = {"ends": SessionState.ENDED, "fails": SessionState.FAILED, "handed back": SessionState.QUEUED}
    assert result.session is not None and result.session.state is expected[path]
    assert store.on_loop == []


async def test_speech_beyond_max_audio_s_queued_is_dropped_not_buffered(settings: Settings) -> None:
    """An agent may push speech faster than real time, but at most ``max_audio_s`` of it waits."""
    store, pool, _, lease = setup(settings)
    chunks: list[InputEvent] = [SpeechChunk(tone(0.2), 16_000) for _ in range(15)]  # 3 s at once
    io = SessionIO(ScriptedInput([*chunks, SegmentEnd(), InputClosed("done")]), ListSink(realtime=True))
    capped = settings.model_copy(update={"max_audio_s": 1.0})
    session_runner = SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=capped,
        io_factory=lambda *_: io,
        resolve_avatar=lambda s: AvatarSource(key="A1"),
    )

    result = await asyncio.wait_for(session_runner.run(), 20)

    assert result.session is not None and result.session.state is SessionState.ENDED
    # about 1 s queued (5 chunks, one or two more as frames render meanwhile), the rest dropped;
    # uncapped, nothing is dropped and all 3 s render
    assert 1.0 <= session_runner.stats.dropped_speech_s <= 2.0 + 1e-9
    assert result.frames <= math.ceil(2.0 * 16_000 / SAMPLES_PER_FRAME)
