"""WorkerRuntime: the core of one render worker process: claim, run, lease, release.

A worker process owns exactly one runtime, which owns:

* one event loop on its own thread (``LoopThread``) on which every session of the process runs;
* the lifecycle ``prewarm → start → stop``: ModelPool prewarm (bounded) with READY / ERROR in the
  worker registry, the heartbeat (``Heartbeat``: registry entry, reaper passes), drain with
  hand-back after a grace period;
* the slots: at most ``capacity`` sessions at once, fewer when a middleware (admission by measured
  cost) says so; a session that ended always frees its slot (``Slots``, kept in a ``finally``).

Everything else a worker does around sessions (metrics, memory ceiling, liveness, tracing,
subscriptions, the health endpoint) is middleware given at construction (``farm.worker.middleware``).
Its edges are protocols (SessionStore, SessionQueue, WorkerRegistry, AgentStore), so it runs the
same over Redis in production and in-memory in unit tests (``tests/support/stub_worker.py``). Celery
tasks (``tasks/``) only decode a message and call ``run_session`` from their thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from farm.kernel.contracts import RunSessionMessage, SessionTaskResult, WorkerInfo, WorkerState
from farm.kernel.domain import ModelKind
from farm.kernel.errors import FarmError, PrewarmFailed
from farm.kernel.settings import Settings
from farm.render.base import AvatarSource
from farm.render.pool import ModelPool, PoolState
from farm.sessions.base import AgentStore, Lease, SessionQueue, SessionStore, WorkerRegistry
from farm.sessions.runner import DynamicsAttach, IoFactory, MinuteMeter, ResolveAvatar, SessionRunner
from farm.worker.drain import Drain
from farm.worker.heartbeat import Heartbeat
from farm.worker.loop import LoopThread
from farm.worker.middleware import WorkerMiddleware, order_of, tick_all
from farm.worker.slots import Slots

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeParts:
    """What a runtime is built on: protocols with Redis or in-memory implementations."""

    store: SessionStore
    queue: SessionQueue  # hand-backs are re-submitted here
    registry: WorkerRegistry
    agents: AgentStore
    pool: ModelPool | None
    io_factory: IoFactory
    resolve_avatar: ResolveAvatar
    hot_avatars: Callable[[], Sequence[tuple[ModelKind, AvatarSource]]] = tuple  # preloaded at prewarm
    warm_io: Callable[[], object] = tuple  # at prewarm: what the first session would import on the loop
    attach_dynamics: DynamicsAttach | None = None
    meter: MinuteMeter | None = None  # per-minute credits (farm.tenancy.metering.meter_minute)
    maintenance: Sequence[Callable[[], object]] = ()  # reaper / rescuer passes, run by the heartbeat
    close_pool_on_stop: bool = True  # False where the pool outlives the runtime (tests share one)


class WorkerRuntime:
    """Runs every session of one worker process on one event loop; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        parts: RuntimeParts,
        *,
        worker_id: str,
        hostname: str,
        queues: list[str],
        capacity: int,
        middleware: Sequence[WorkerMiddleware] = (),
    ) -> None:
        self.settings = settings
        self.parts = parts
        self.worker_id = worker_id
        self.hostname = hostname
        self.queues = queues
        self.middleware = order_of(list(middleware))
        self.state: WorkerState = "STARTING"
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.warm_queue: str | None = None
        self.error: str | None = None  # why the runtime turned ERROR after prewarm (memory ceiling)
        self.slots = Slots(capacity)
        self._loop = LoopThread()
        self._stopping = threading.Event()
        self._heartbeat: Future[None] | None = None
        self.drain = Drain(self, settings.drain_grace_s)
        self.beat = Heartbeat(
            parts.registry,
            entry=self.info,
            ticks=lambda: tick_all(self.middleware, self),
            maintenance=parts.maintenance,
            may_maintain=lambda: self.ready,
            heartbeat_s=settings.heartbeat_s,
            maintenance_s=settings.reaper_interval_s,
            ttl_s=settings.worker_ttl_s,
            fields=self.fields,
        )

    # ------------------------------------------------------------ lifecycle: prewarm → start → stop
    def prewarm(self) -> None:
        """Prewarm the pool (bounded) and publish READY, or ERROR on failure; never raises."""
        self.beat.publish()
        pool = self.parts.pool
        if pool is None:
            self.state = "READY"
        elif not self.settings.prewarm:
            pool.mark_ready_lazy()
            self.state = "READY"
        else:
            try:
                pool.prewarm(self.settings.prewarm_timeout_s, hot=self.parts.hot_avatars())
                self.state = "READY"
            except PrewarmFailed:
                self.state = "ERROR"
            try:  # the session io's own warm-up; if it fails, the first session imports (and reports) it
                self.parts.warm_io()
            except Exception:
                log.exception("session io warm-up failed: the first session imports it")
        if self.state == "READY":
            self.ready_at = time.time()
        for m in self.middleware:
            m.on_prewarmed(self)
        self.beat.publish()

    def start(self) -> None:
        """Start the middleware, the event loop thread and the heartbeat; idempotent."""
        if self._loop.started:
            return
        for m in self.middleware:
            m.on_start(self)
        self._loop.start()
        self._heartbeat = self._loop.submit(self.beat.run())

    def stop(self) -> None:
        """Stop heartbeat and loop, the middleware (reverse order), deregister, release the pool.
        Idempotent; live sessions are the caller's to drain first (``draining``)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.drain.cancel()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self._loop.stop()
        for m in reversed(self.middleware):
            with contextlib.suppress(Exception):
                m.on_stop(self)
        with contextlib.suppress(FarmError):
            self.parts.registry.remove(self.worker_id)
        if self.parts.pool is not None and self.parts.close_pool_on_stop:
            self.parts.pool.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop every session of this process runs on."""
        return self._loop.loop

    # ------------------------------------------------------------ state
    @property
    def ready(self) -> bool:
        pool = self.parts.pool
        return self.state == "READY" and (pool is None or pool.state is PoolState.READY)

    @property
    def free_slots(self) -> int:
        """Sessions this worker takes now: its free slots, lowered by the middleware (admission)."""
        return self._admit(self.slots.capacity - self.slots.used)

    def _admit(self, free: int) -> int:
        if not self.ready:
            return 0
        for m in self.middleware:
            free = min(free, m.limit_free_slots(self, free))
        return max(0, free)

    def progress_age_s(self) -> float:
        """Seconds since the loop last ticked, or since the oldest-stuck live session moved on.

        Liveness probes fail when this grows past a bound: the runtime is wedged.
        """
        oldest = min([self._loop.progress_at, *(r.progress_at for r in self.slots.running())])
        return time.monotonic() - oldest

    def consuming_warm_queue(self, name: str | None) -> None:
        """The consumer reads (or stopped reading) this process's private queue: advertise it."""
        self.warm_queue = name
        self.publish_soon()

    def fail(self, error: str) -> None:
        """Turn ERROR (no new session; liveness fails, so Kubernetes restarts the pod) and hand every
        live session back for another worker. Called by middleware (the memory ceiling)."""
        if self.state == "ERROR":
            return
        self.state = "ERROR"
        self.error = error
        log.error("worker failed: handing sessions back", extra={**self.fields, "error": error})
        self.drain.hand_back_all()
        self.publish_soon()

    # ------------------------------------------------------------ sessions
    def run_session(self, message: RunSessionMessage) -> SessionTaskResult:
        """Run one session on the runtime's loop; blocks the calling (non-loop) thread until it ends."""
        return self._loop.submit(self.arun_session(message)).result()

    async def arun_session(self, message: RunSessionMessage) -> SessionTaskResult:
        """Claim and run one session (on the runtime's loop)."""
        sid = message.session_id
        refusal = "not ready" if not self.ready else None
        for m in self.middleware:
            refusal = refusal or m.before_claim(self, message)
        if refusal is None and not self.slots.reserve(self._admit):
            refusal = "no free slot"
        if refusal is not None:
            log.warning(
                "session refused: %s", refusal, extra={**self.fields, "session_id": sid, "reason": refusal}
            )
            return SessionTaskResult(status="no_slot", session_id=sid)
        runner: SessionRunner | None = None
        try:
            claimed = await self._claim(message)
            if claimed is None:
                log.info("duplicate delivery: session not claimable", extra={"session_id": sid})
                return SessionTaskResult(status="duplicate", session_id=sid)
            lease, claimed_at, timings = claimed
            assert self.parts.pool is not None, "a render session reached a worker without a ModelPool"
            runner = SessionRunner(
                lease=lease,
                store=self.parts.store,
                pool=self.parts.pool,
                settings=self.settings,
                io_factory=self.parts.io_factory,
                resolve_avatar=self.parts.resolve_avatar,
                claimed_at=claimed_at,
                timings_ms=timings,
                on_handback=lambda s: self.parts.queue.submit(
                    RunSessionMessage(session_id=s.id, model=s.model)
                ),
                attach_dynamics=self.parts.attach_dynamics,
                meter=self.parts.meter,
            )
            if self.slots.register(sid, runner) and self.drain.expired:
                runner.request_handback()  # started after the drain grace ran out
            self.publish_soon()
            for m in self.middleware:
                m.after_claim(self, message, timings)
            result = await runner.run()
            for m in self.middleware:
                m.on_session_end(self, message, runner, result)
        finally:
            self.slots.release(sid, runner)
            self.publish_soon()
        return SessionTaskResult.from_run(sid, result)

    async def _claim(self, message: RunSessionMessage) -> tuple[Lease, float, dict[str, float]] | None:
        """The lease (None: not claimable, a duplicate delivery), when it was taken, and the timings
        of the queue wait and the claim (ms)."""
        started = time.perf_counter()
        lease = await asyncio.to_thread(
            self.parts.store.claim, message.session_id, self.worker_id, self.settings.lease_ttl_s
        )
        claimed_at = time.perf_counter()
        if lease is None:
            return None
        timings = {
            "queue_wait": round(max(0.0, time.time() - message.enqueued_at) * 1000.0, 3),
            "claim": round((claimed_at - started) * 1000.0, 3),
        }
        return lease, claimed_at, timings

    def speak(self, session_id: str, pcm: np.ndarray, sample_rate: int) -> bool:
        """Play ``pcm`` on the live session ``session_id`` if this process holds it (any thread)."""
        runner = self.slots.runner(session_id) if self._loop.started else None
        if runner is not None:
            self._loop.submit(runner.speak(pcm, sample_rate))
        return runner is not None

    def stop_session(self, session_id: str) -> bool:
        """A client asked to stop ``session_id``: if this process holds it, end it at its next frame
        (any thread). Other processes ignore the request; the durable flag reaches the holder anyway."""
        runner = self.slots.runner(session_id) if self._loop.started else None
        if runner is not None:
            self.loop.call_soon_threadsafe(runner.request_stop)
        return runner is not None

    # ------------------------------------------------------------ lapse
    def abandon_all(self) -> None:
        """This process's liveness lapsed (the reaper may have taken its sessions): stop publishing."""
        for runner in self.slots.running():
            runner.abandon()

    # ------------------------------------------------------------ registry
    def info(self) -> WorkerInfo:
        pool = self.parts.pool
        stats = pool.stats() if pool is not None else None
        frames, late = self.slots.frame_counters()
        return WorkerInfo(
            worker_id=self.worker_id,
            hostname=self.hostname,
            pid=os.getpid(),
            queues=self.queues,
            state=self.state,
            capacity=self.slots.capacity,
            active_sessions=self.slots.used,
            admissible=self.free_slots,
            prewarm_s=stats.prewarm_s if stats else None,
            models=stats.models if stats else [],
            backend=stats.backend if stats else None,
            hot_avatars=stats.hot_avatars if stats else [],
            cached_avatars=stats.cached_keys if stats else [],
            warm_queue=self.warm_queue if self.state == "READY" else None,
            avatar_hits=stats.avatar_hits if stats else 0,
            avatar_misses=stats.avatar_misses if stats else 0,
            error=self.error or (stats.error if stats else None),
            started_at=self.started_at,
            ready_at=self.ready_at,
            frames_rendered=frames,
            late_frames=late,
        )

    def publish_soon(self) -> None:
        """Publish from a thread: never block the loop on Redis."""
        if self._stopping.is_set():
            return
        if self._loop.started and self.loop.is_running():
            self.loop.run_in_executor(None, self.beat.publish)
        else:
            self.beat.publish()

    @property
    def fields(self) -> dict[str, object]:
        return {"worker_id": self.worker_id}
