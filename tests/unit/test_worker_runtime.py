"""The worker runtime runs N sessions of one process at once on one loop, the (N+1)th waits for a slot,
and no session can strand a slot: a join that never completes fails with ROOM_JOIN_FAILED, a wedged
renderer gives its lease up, every ended session frees its slot. Driven by the in-process stub worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import numpy as np
import pytest

from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.settings import Settings
from farm.render.base import AvatarFrame, AvatarSource
from farm.render.pool import ModelPool
from farm.sessions.agents import MemoryAgentStore
from farm.sessions.memory import MemorySessionStore
from farm.sessions.reaper import LocalReaperLock, Reaper
from farm.sessions.registry import MemoryWorkerRegistry
from farm.sessions.runner import MinuteMeter, ResolveAvatar
from farm.stream.base import InputClosed, InputEvent, RenderInfo, SessionIO, SpeechChunk
from farm.tenancy.metering import MemoryLedger, Metering, meter_minute
from farm.worker.memory import MemoryCeiling
from farm.worker.middleware import WorkerMiddleware
from farm.worker.runtime import RuntimeParts, WorkerRuntime
from tests.support.helpers import wait_until
from tests.support.stub_worker import StubQueue, StubWorker
from tests.support.tone_engine import ToneEngine

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

CAPACITY = 3


class HeldInput:
    """Speech once, then open until the test releases it (a live agent that keeps the room)."""

    def __init__(self, *, join_hangs: bool = False) -> None:
        self.release = threading.Event()
        self.joined = threading.Event()
        self._join_hangs = join_hangs

    async def start(self) -> None:
        if self._join_hangs:
            await asyncio.Event().wait()  # a LiveKit join that never completes
        self.joined.set()

    async def events(self) -> AsyncIterator[InputEvent]:
        t = np.arange(1600) / 16_000
        yield SpeechChunk((np.sin(2 * np.pi * 200 * t) * 8000).astype(np.int16), 16_000)
        while not self.release.is_set():
            await asyncio.sleep(0.02)
        yield InputClosed("agent left")

    async def aclose(self) -> None:
        self.release.set()


class CountingSink:
    realtime = True

    def __init__(self) -> None:
        self.frames = 0
        self.loud = 0  # frames whose audio carries speech
        self.first = threading.Event()

    async def start(self) -> None:
        pass

    async def write(self, frame: AvatarFrame) -> None:
        self.frames += 1
        if frame.audio is not None and int(np.abs(frame.audio).max()) > 1000:
            self.loud += 1
        self.first.set()

    async def aclose(self) -> None:
        pass


class Farm:
    """One stub worker over in-memory parts; room sessions get a HeldInput each."""

    def __init__(
        self,
        settings: Settings,
        *,
        frame_delay_s: float = 0.0,
        resolve_avatar: ResolveAvatar | None = None,
        meter: MinuteMeter | None = None,
        middleware: Sequence[WorkerMiddleware] = (),
        warm_io: Callable[[], object] = tuple,
    ) -> None:
        self.settings = settings
        self.store = MemorySessionStore()
        self.queue = StubQueue()
        self.inputs: dict[str, HeldInput] = {}
        self.sinks: dict[str, CountingSink] = {}
        self.opened: dict[str, threading.Event] = {}
        self.hang_joins = False
        pool = ModelPool([ModelKind.ESSENCE], lambda _: ToneEngine(size=64, frame_delay_s=frame_delay_s))
        self.reaper = Reaper(self.store, self.queue, LocalReaperLock(), max_attempts=3)
        parts = RuntimeParts(
            store=self.store,
            queue=self.queue,
            registry=MemoryWorkerRegistry(),
            agents=MemoryAgentStore(),
            pool=pool,
            io_factory=self._io,
            resolve_avatar=resolve_avatar or (lambda s: AvatarSource(key=s.avatar_id or "A1")),
            meter=meter,
            warm_io=warm_io,
        )
        self.runtime = WorkerRuntime(
            settings,
            parts,
            worker_id="w1",
            hostname="h",
            queues=["essence"],
            capacity=CAPACITY,
            middleware=middleware,
        )
        self.worker = StubWorker(self.runtime, self.queue)

    def _io(self, session: Session, render: RenderInfo) -> SessionIO:
        assert render.frame_size == (64, 64)
        held = HeldInput(join_hangs=self.hang_joins)
        sink = CountingSink()
        self.inputs[session.id], self.sinks[session.id] = held, sink
        self.opened[session.id].set()
        return SessionIO(input=held, sink=sink, output=f"livekit://r/{session.id}")

    def submit(self) -> str:
        room = {"room": f"r-{uuid.uuid4().hex[:6]}", "identity": "avatar", "agent_identity": "agent"}
        new = Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE, avatar_id="A1", livekit=room)
        session, _ = self.store.create(new)
        self.opened[session.id] = threading.Event()
        self.queue.submit(RunSessionMessage(session_id=session.id, model=session.model))
        return session.id

    def streaming(self, sid: str) -> bool:
        return self.opened[sid].wait(10) and self.sinks[sid].first.wait(10)


@pytest.fixture
def farm(settings: Settings) -> Iterator[Farm]:
    f = Farm(settings)
    f.worker.start()
    try:
        yield f
    finally:
        for held in f.inputs.values():
            held.release.set()
        f.worker.stop()


def test_n_sessions_stream_at_once_and_the_next_waits_for_a_free_slot(farm: Farm) -> None:
    first = [farm.submit() for _ in range(CAPACITY)]
    assert all(farm.streaming(sid) for sid in first)
    assert farm.runtime.slots.used == CAPACITY and farm.runtime.free_slots == 0
    assert farm.runtime.info().active_sessions == CAPACITY

    extra = farm.submit()
    assert not farm.worker.started(extra)  # N+1 waits in the queue, it is not refused or run
    assert farm.store.get(extra).state is SessionState.QUEUED

    farm.inputs[first[0]].release.set()
    assert farm.worker.result(first[0]).status == "ENDED"
    assert farm.streaming(extra)  # the freed slot took the waiting session
    for sid in [*first[1:], extra]:
        farm.inputs[sid].release.set()
        assert farm.worker.result(sid).status == "ENDED"
    assert farm.runtime.slots.used == 0 and farm.runtime.free_slots == CAPACITY
    assert all(farm.store.get(sid).state is SessionState.ENDED for sid in [*first, extra])
    frames, late = farm.runtime.slots.frame_counters()  # what the registry entry reports for this process
    assert frames == sum(sink.frames for sink in farm.sinks.values()) and 0 <= late <= frames
    assert farm.runtime.info().frames_rendered == frames


def test_all_sessions_of_the_process_share_one_event_loop(farm: Farm) -> None:
    sids = [farm.submit() for _ in range(2)]
    assert all(farm.streaming(sid) for sid in sids)
    loops: list[asyncio.AbstractEventLoop] = []
    done = threading.Event()

    def probe() -> None:
        loops.append(asyncio.get_running_loop())
        done.set()

    farm.runtime.loop.call_soon_threadsafe(
        lambda: asyncio.ensure_future(asyncio.sleep(0)).add_done_callback(lambda _f: probe())
    )
    assert done.wait(5)
    assert loops == [farm.runtime.loop]
    assert farm.runtime.progress_age_s() < 5


def test_a_join_that_never_completes_fails_with_a_reason_and_frees_its_slot(settings: Settings) -> None:
    f = Farm(settings.model_copy(update={"join_timeout_s": 0.3}))
    f.hang_joins = True
    f.worker.start()
    try:
        sid = f.submit()
        result = f.worker.result(sid)
        session = f.store.get(sid)
        assert result.status == "FAILED" and session.state is SessionState.FAILED
        assert session.failure is not None and session.failure["code"] == "ROOM_JOIN_FAILED"
        assert "0.3 s" in session.failure["message"]
        assert f.runtime.slots.used == 0 and f.runtime.free_slots == CAPACITY
    finally:
        f.worker.stop()


def test_a_session_wedged_in_starting_gives_its_lease_up_and_the_reaper_requeues_it(
    settings: Settings,
) -> None:
    cfg = settings.model_copy(
        update={"join_timeout_s": 0.2, "start_timeout_s": 0.4, "lease_renew_s": 0.05, "lease_ttl_s": 5.0}
    )
    wedged = threading.Event()
    f = Farm(cfg, resolve_avatar=lambda _s: wedged.wait() and AvatarSource(key="A1"))  # never returns
    f.worker.start()
    try:
        sid = f.submit()
        result = f.worker.result(sid)
        assert result.status == "stalled"
        assert f.store.get(sid).state is SessionState.STARTING
        assert f.runtime.slots.used == 0 and f.runtime.free_slots == CAPACITY
        report = f.reaper.run_once()  # released well before its 5 s lease would have expired
        assert sid in report.requeued
        # re-queued (the stub worker may already have claimed it again from its queue)
        assert SessionState.QUEUED in [h.state for h in f.store.get(sid).history[1:]]
    finally:
        wedged.set()
        f.worker.stop()


def test_a_wedged_renderer_gives_its_lease_up_and_the_reaper_requeues_the_session(settings: Settings) -> None:
    cfg = settings.model_copy(update={"stall_timeout_s": 0.3, "lease_renew_s": 0.05, "lease_ttl_s": 5.0})
    f = Farm(cfg, frame_delay_s=1.5)  # every frame takes 1.5 s: far past the stall bound
    f.worker.start()
    try:
        sid = f.submit()
        result = f.worker.result(sid)
        assert result.status == "stalled"
        assert f.runtime.slots.used == 0 and f.runtime.free_slots == CAPACITY
        report = f.reaper.run_once()  # the lease was released, not left to expire
        assert sid in report.requeued
        # re-queued (the stub worker may already have claimed it again from its queue)
        assert SessionState.QUEUED in [h.state for h in f.store.get(sid).history[1:]]
    finally:
        f.worker.stop()


def test_a_draining_worker_hands_live_sessions_back(farm: Farm) -> None:
    sid = farm.submit()
    assert farm.streaming(sid)
    farm.runtime.drain.stop_intake()  # takes no new session (the consumer sees no slot)
    farm.runtime.drain.hand_back_all()
    assert farm.worker.result(sid).status == "handed_back"
    assert farm.store.get(sid).state is SessionState.QUEUED
    assert [m.session_id for m in farm.queue.submitted].count(sid) == 2  # re-submitted once


def test_a_worker_past_its_memory_ceiling_turns_error_and_hands_its_sessions_back(settings: Settings) -> None:
    rss_mb = [100.0]
    ceiling = MemoryCeiling(limit_mb=500.0, rss_mb=lambda: rss_mb[0])
    f = Farm(settings, middleware=[ceiling])
    f.worker.start()
    try:
        sid = f.submit()
        assert f.streaming(sid)
        rss_mb[0] = 600.0  # the process grows past its ceiling
        ceiling.on_tick(f.runtime)  # what the heartbeat runs every heartbeat_s

        assert f.runtime.state == "ERROR" and not f.runtime.ready and f.runtime.free_slots == 0
        assert f.runtime.info().error is not None and "ceiling" in f.runtime.info().error
        assert f.worker.result(sid).status == "handed_back"
        assert f.store.get(sid).state is SessionState.QUEUED  # for another worker; none runs it here
    finally:
        f.worker.stop()


def test_a_session_out_of_credits_ends_at_its_minute_boundary_and_each_minute_is_charged_once(
    settings: Settings,
) -> None:
    ledger = MemoryLedger()
    metering = Metering(ledger)
    ledger.set_plan("t", "free")  # 199 credits a month; an Essence minute costs 2
    metering.charge_once("t", "spend-down", "test", 198)  # 1 credit left: not enough for minute 0
    f = Farm(settings, meter=lambda s, m, token: meter_minute(metering, s, m, token).value)
    f.worker.start()
    try:
        sid = f.submit()
        result = f.worker.result(sid)
        session = f.store.get(sid)
        assert result.status == "ENDED" and session.history[-2].reason == "out of credits"
        assert session.timings_ms is not None and session.timings_ms["frames"] == 0  # no unpaid frame

        ledger.add_topup("t", 10)
        paid = f.submit()
        assert f.streaming(paid)  # minute 0 charged once, the session streams
        f.inputs[paid].release.set()
        assert f.worker.result(paid).status == "ENDED"
        counters = metering.usage("t").counters
        assert (counters["credits:essence"], counters["units:essence"]) == (2, 1)  # one minute, charged once
    finally:
        f.worker.stop()


def test_speech_for_a_live_session_reaches_its_renderer_on_the_runtime_loop(farm: Farm) -> None:
    sid = farm.submit()
    assert farm.streaming(sid)
    t = np.arange(8000) / 16_000
    pcm = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)

    sink = farm.sinks[sid]
    wait_until(lambda: sink.frames > 10 and sink.loud < sink.frames, what="the first speech to play out")
    before = sink.loud

    assert farm.runtime.speak(sid, pcm, 16_000) is True
    wait_until(lambda: sink.loud >= before + 10, what="the spoken 0.5 s to reach the sink")
    assert farm.runtime.speak("not-here", pcm, 16_000) is False  # another worker's session: ignored


def test_the_runtime_reports_sessions_frames_and_failures_to_prometheus(settings: Settings) -> None:
    from prometheus_client import CollectorRegistry

    from farm.worker.metrics import MetricsMiddleware, WorkerMetrics

    registry = CollectorRegistry()
    metrics = MetricsMiddleware(WorkerMetrics(registry))
    f = Farm(settings.model_copy(update={"join_timeout_s": 0.3}), middleware=[metrics])
    f.worker.start()
    try:
        ok = f.submit()
        assert f.streaming(ok)
        f.inputs[ok].release.set()
        assert f.worker.result(ok).status == "ENDED"
        f.hang_joins = True
        failed = f.submit()
        assert f.worker.result(failed).status == "FAILED"

        pool = {"pool": "essence"}
        assert registry.get_sample_value("farm_sessions_started_total", pool) == 2
        assert registry.get_sample_value("farm_frames_rendered_total", pool) == f.sinks[ok].frames
        assert registry.get_sample_value("farm_session_ttff_seconds_count", pool) == 1
        code = {**pool, "code": "ROOM_JOIN_FAILED"}
        assert registry.get_sample_value("farm_session_failures_total", code) == 1
    finally:
        f.worker.stop()


def test_stop_intake_keeps_live_sessions_and_takes_no_new_one(farm: Farm) -> None:
    live = farm.submit()
    assert farm.streaming(live)
    farm.runtime.drain.stop_intake()  # what Kubernetes' preStop (/drainz) asks for
    assert farm.runtime.state == "DRAINING" and farm.runtime.free_slots == 0
    waiting = farm.submit()
    assert not farm.worker.started(waiting)
    farm.inputs[live].release.set()
    assert farm.worker.result(live).status == "ENDED"  # not handed back: it ran to its end


def test_prewarm_warms_the_session_io_once_and_a_failed_warm_up_leaves_the_worker_ready(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    warmed = Farm(settings, warm_io=lambda: calls.append("warm"))
    warmed.runtime.prewarm()
    assert calls == ["warm"] and warmed.runtime.state == "READY"

    def broken() -> None:
        raise ImportError("no room wiring here")

    failed = Farm(settings, warm_io=broken)
    with caplog.at_level(logging.ERROR, logger="farm.worker.runtime"):
        failed.runtime.prewarm()
    assert failed.runtime.state == "READY"  # the first room session imports it, and reports a failure
    assert "session io warm-up failed" in caplog.text
