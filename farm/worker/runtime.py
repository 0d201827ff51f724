"""WorkerRuntime: the core of one render worker process, with one event loop for all its sessions.

A worker process owns exactly one runtime. The runtime owns:

* one long-lived asyncio event loop on its own thread (``farm-runtime``), on which every session of
  the process runs: claim, lease renewal, room connection (the LiveKit FFI dispatches each room's
  events to the loop that created it, so rooms on private per-thread loops starve and panic),
  rendering hand-off to each session's render lane, publishing, drain and hand-back;
* the process lifecycle ``prewarm → start → stop``: ModelPool prewarm (bounded) with READY / ERROR in
  the worker registry, the heartbeat that refreshes the registry entry and runs maintenance (reaper,
  rescuer), drain on shutdown with hand-back after a grace period;
* the slot count: at most ``capacity`` sessions run at once; a worker never advertises a free slot
  it cannot serve, and a session that ended always frees its slot (the count is kept in a
  ``finally``).

Its edges are protocols (SessionStore, SessionQueue, WorkerRegistry, AgentStore), so it runs the
same over Redis in production and over the in-memory implementations in unit tests. Celery tasks
(``tasks/``) only decode a message and call ``run_session`` from their thread; tests drive the same
runtime in-process (``tests/support/stub_worker.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from farm.kernel.contracts import RunSessionMessage, SessionTaskResult, WorkerInfo, WorkerState
from farm.kernel.domain import AgentStatus, ModelKind, Session
from farm.kernel.errors import BackendUnavailable, FarmError, PrewarmFailed
from farm.kernel.settings import Settings
from farm.render.base import AvatarSource
from farm.render.pool import ModelPool, PoolState
from farm.sessions.base import AgentStore, Lease, SessionQueue, SessionStore, WorkerRegistry
from farm.sessions.liveness import Heart, WorkerLiveness
from farm.sessions.runner import (
    DynamicsAttach,
    IoFactory,
    MinuteMeter,
    ResolveAvatar,
    RunResult,
    SessionRunner,
)

log = logging.getLogger(__name__)

TTFF_STAGES = ("queue_wait", "claim", "model_ready", "avatar_ready", "sink_ready")
_TICK_S = 0.5  # the loop's own liveness tick (a blocked loop stops ticking)
_MAX_BACKOFF_S = 5.0  # longest pause between heartbeat Redis calls while Redis keeps failing


def rss_mb_now() -> float:
    """Resident set size of this process in MB (Linux ``/proc/self/statm``)."""
    try:
        resident_pages = int(open("/proc/self/statm").read().split()[1])  # noqa: SIM115
    except (OSError, IndexError, ValueError):
        return 0.0
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class RuntimeParts:
    """What a runtime is built on: protocols with Redis or in-memory implementations."""

    store: SessionStore
    queue: SessionQueue  # hand-backs are re-submitted here
    registry: WorkerRegistry
    agents: AgentStore
    pool: ModelPool | None
    io_factory: IoFactory
    resolve_avatar: ResolveAvatar
    hot_avatar: Callable[[str], AvatarSource] | None = None  # agent id → its Essence source (preload)
    attach_dynamics: DynamicsAttach | None = None
    meter: MinuteMeter | None = None  # per-minute credits (farm.tenancy.metering.meter_minute)
    maintenance: Sequence[Callable[[], object]] = ()  # reaper / rescuer passes, run by the heartbeat
    on_stop: Sequence[Callable[[], object]] = ()  # e.g. delete this worker's private queue
    close_pool_on_stop: bool = True  # False where the pool outlives the runtime (tests share one)
    metrics: SessionMetrics | None = None  # Prometheus (farm.worker.metrics.WorkerMetrics)
    liveness: WorkerLiveness | None = None  # the per-process liveness key (fast resume after a kill)


class SessionMetrics(Protocol):
    """What the runtime reports per session (``farm.worker.metrics.WorkerMetrics``)."""

    def session_started(self, pool: str, queue_wait_s: float) -> None: ...
    def session_ended(self, pool: str) -> None: ...
    def set_capacity(self, pool: str, free_slots: int) -> None: ...
    def set_ready(self, pool: str, ready: bool) -> None: ...
    def ttff(self, pool: str, total_s: float, stages: Mapping[str, float] | None = None) -> None: ...
    def frames(self, pool: str, rendered: int, late: int = 0) -> None: ...
    def lease_lost(self, pool: str) -> None: ...
    def handed_back(self, pool: str) -> None: ...
    def dropped_speech(self, pool: str, seconds: float) -> None: ...
    def failed(self, pool: str, code: str) -> None: ...


@dataclass
class RedisBackoff:
    """Intervals of the heartbeat's Redis calls: the normal one while Redis answers, doubling per
    consecutive failure (capped at ``max_s``, never below the normal one) while it does not."""

    max_s: float = _MAX_BACKOFF_S
    failures: int = 0

    def next_s(self, normal_s: float, ok: bool) -> float:
        self.failures = 0 if ok else self.failures + 1
        if not self.failures:
            return normal_s
        return max(normal_s, min(self.max_s, normal_s * 2**self.failures))


@dataclass
class _Slots:
    capacity: int
    runners: dict[str, SessionRunner] = field(default_factory=dict)
    reserved: int = 0  # claimed slots whose runner is not built yet

    @property
    def used(self) -> int:
        return len(self.runners) + self.reserved


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
    ) -> None:
        self.settings = settings
        self.parts = parts
        self.worker_id = worker_id
        self.hostname = hostname
        self.queues = queues
        self.state: WorkerState = "STARTING"
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.warm_queue: str | None = None
        self._slots = _Slots(capacity)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_ready = threading.Event()
        self._stopping = threading.Event()
        self._tick_at = time.monotonic()
        self._heartbeat: Future[None] | None = None
        self._ticker: Future[None] | None = None
        self._drain_timer: threading.Timer | None = None
        self._drain_expired = False
        self.error: str | None = None  # why the runtime turned ERROR after prewarm (memory ceiling)
        self._publish_backoff = RedisBackoff()
        self._maintain_backoff = RedisBackoff()
        self._ended_frames = 0  # frame counters of sessions that already left this process
        self._ended_late = 0
        self._heart: Heart | None = None

    # ------------------------------------------------------------ lifecycle: prewarm → start → stop
    def prewarm(self) -> None:
        """Prewarm the pool (bounded) and publish READY, or ERROR on failure; never raises."""
        self._publish_quietly()
        pool = self.parts.pool
        if pool is None:
            self.state = "READY"
        elif not self.settings.prewarm:
            pool.mark_ready_lazy()
            self.state = "READY"
        else:
            try:
                pool.prewarm(self.settings.prewarm_timeout_s, hot=self._hot_avatars())
                self.state = "READY"
            except PrewarmFailed:
                self.state = "ERROR"
        if self.state == "READY":
            self.ready_at = time.time()
        self._publish_quietly()

    def start(self) -> None:
        """Start the event loop thread and the heartbeat; idempotent."""
        if self._thread is not None:
            return
        if self.parts.liveness is not None:  # before the loop: no claim precedes the first beat
            self._heart = Heart(
                self.parts.liveness,
                self.worker_id,
                ttl_s=self.settings.liveness_ttl_s,
                renew_s=self.settings.liveness_renew_s,
                on_lapse=self.abandon_all,
            )
            self._heart.start()
        self._thread = threading.Thread(target=self._serve, name="farm-runtime", daemon=True)
        self._thread.start()
        self._loop_ready.wait()
        self._heartbeat = asyncio.run_coroutine_threadsafe(self._beat(), self._require_loop())
        self._ticker = asyncio.run_coroutine_threadsafe(self._tick(), self._require_loop())

    def stop(self) -> None:
        """Stop heartbeat and loop, deregister, release the pool. Idempotent; live sessions are the
        caller's to drain first (``draining``)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        for beat in (self._heartbeat, self._ticker):
            if beat is not None:
                beat.cancel()
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
        if self._heart is not None:
            self._heart.stop()  # what this process still held is re-queued by the next reaper pass
            with contextlib.suppress(FarmError):
                if not self.parts.store.leases_of(self.worker_id):  # else the reaper forgets it
                    self.parts.store.forget_holder(self.worker_id)
        with contextlib.suppress(FarmError):
            self.parts.registry.remove(self.worker_id)
        for hook in self.parts.on_stop:
            with contextlib.suppress(Exception):
                hook()
        if self.parts.pool is not None and self.parts.close_pool_on_stop:
            self.parts.pool.close()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._loop_ready.set)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the worker runtime is not started")
        return self._loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop every session of this process runs on."""
        return self._require_loop()

    # ------------------------------------------------------------ state
    @property
    def ready(self) -> bool:
        pool = self.parts.pool
        return self.state == "READY" and (pool is None or pool.state is PoolState.READY)

    @property
    def capacity(self) -> int:
        return self._slots.capacity

    @property
    def active(self) -> int:
        with self._lock:
            return self._slots.used

    @property
    def free_slots(self) -> int:
        return max(0, self.capacity - self.active) if self.ready else 0

    def progress_age_s(self) -> float:
        """Seconds since the loop last ticked, or since the oldest-stuck live session moved on.

        Liveness probes fail when this grows past a bound: the runtime is wedged.
        """
        now = time.monotonic()
        with self._lock:
            runners = list(self._slots.runners.values())
        oldest = min([self._tick_at, *(r.progress_at for r in runners)])
        return now - oldest

    def consuming_warm_queue(self, name: str) -> None:
        """The consumer now reads this process's private queue: advertise it for warm routing."""
        self.warm_queue = name
        self._publish_quietly()

    # ------------------------------------------------------------ sessions
    def run_session(self, message: RunSessionMessage) -> SessionTaskResult:
        """Run one session on the runtime's loop; blocks the calling (non-loop) thread until it ends."""
        future = asyncio.run_coroutine_threadsafe(self.arun_session(message), self._require_loop())
        return future.result()

    async def arun_session(self, message: RunSessionMessage) -> SessionTaskResult:
        """Claim and run one session (on the runtime's loop)."""
        sid = message.session_id
        if not self._reserve():
            log.warning("no free slot: session refused", extra={**self._fields, "session_id": sid})
            return SessionTaskResult(status="no_slot", session_id=sid)
        registered = False
        try:
            started = time.perf_counter()
            lease = await asyncio.to_thread(
                self.parts.store.claim, sid, self.worker_id, self.settings.lease_ttl_s
            )
            claimed_at = time.perf_counter()
            if lease is None:
                log.info("duplicate delivery: session not claimable", extra={"session_id": sid})
                return SessionTaskResult(status="duplicate", session_id=sid)
            timings = {
                "queue_wait": round(max(0.0, time.time() - message.enqueued_at) * 1000.0, 3),
                "claim": round((claimed_at - started) * 1000.0, 3),
            }
            runner = self._runner(lease, claimed_at, timings)
            self._register(sid, runner)
            registered = True
            self._metric_started(message, timings)
            try:
                result = await runner.run()
            finally:
                with self._lock:
                    self._ended_frames += runner.frames
                    self._ended_late += runner.late_frames
            self._metric_ended(message, runner, result)
        finally:
            self._release(sid, registered)
        return SessionTaskResult.from_run(sid, result)

    def _runner(self, lease: Lease, claimed_at: float, timings: dict[str, float]) -> SessionRunner:
        assert self.parts.pool is not None, "a render session reached a worker without a ModelPool"
        return SessionRunner(
            lease=lease,
            store=self.parts.store,
            pool=self.parts.pool,
            settings=self.settings,
            io_factory=self.parts.io_factory,
            resolve_avatar=self.parts.resolve_avatar,
            claimed_at=claimed_at,
            timings_ms=timings,
            on_handback=self._resubmit,
            attach_dynamics=self.parts.attach_dynamics,
            meter=self.parts.meter,
        )

    def _metric_started(self, message: RunSessionMessage, timings: Mapping[str, float]) -> None:
        if self.parts.metrics is not None:
            self.parts.metrics.session_started(message.model.value, timings["queue_wait"] / 1000.0)

    def _metric_ended(self, message: RunSessionMessage, runner: SessionRunner, result: RunResult) -> None:
        metrics, pool = self.parts.metrics, message.model.value
        if metrics is None:
            return
        metrics.session_ended(pool)
        metrics.frames(pool, runner.frames, runner.late_frames)
        if runner.dropped_speech_s:
            metrics.dropped_speech(pool, runner.dropped_speech_s)
        session = result.session
        timings = (session.timings_ms or {}) if session is not None else {}
        if "first_frame" in timings:
            stages = {
                k: v / 1000.0 for k, v in timings.items() if k in ("queue_wait", "claim", "avatar_ready")
            }
            metrics.ttff(pool, timings["first_frame"] / 1000.0, stages)
        if result.handed_back:
            metrics.handed_back(pool)
        elif result.lease_lost:
            metrics.lease_lost(pool)
        elif session is not None and session.failure:
            metrics.failed(pool, session.failure.get("code", "INTERNAL_ERROR"))

    def stop_intake(self) -> None:
        """Take no new session (DRAINING) but keep the live ones to their end (Kubernetes preStop)."""
        if self.state == "READY":
            self.state = "DRAINING"
            self._publish_soon()

    def _reserve(self) -> bool:
        with self._lock:
            if not self.ready or self._slots.used >= self._slots.capacity:
                return False
            self._slots.reserved += 1
        return True

    def _register(self, session_id: str, runner: SessionRunner) -> None:
        with self._lock:
            self._slots.reserved -= 1
            self._slots.runners[session_id] = runner
            drain_over = self.state == "DRAINING" and self._drain_expired
        self._publish_soon()
        if drain_over:
            runner.request_handback()  # started after the drain grace ran out

    def _release(self, session_id: str, registered: bool) -> None:
        with self._lock:
            if registered:
                self._slots.runners.pop(session_id, None)
            else:
                self._slots.reserved -= 1
        self._publish_soon()

    def _resubmit(self, session: Session) -> None:
        self.parts.queue.submit(RunSessionMessage(session_id=session.id, model=session.model))

    def speak(self, session_id: str, pcm: np.ndarray, sample_rate: int) -> bool:
        """Play ``pcm`` on the live session ``session_id`` if this process holds it (any thread)."""
        with self._lock:
            runner = self._slots.runners.get(session_id)
        loop = self._loop
        if runner is None or loop is None:
            return False
        asyncio.run_coroutine_threadsafe(runner.speak(pcm, sample_rate), loop)
        return True

    def stop_session(self, session_id: str) -> bool:
        """A client asked to stop ``session_id``: if this process holds it, end it at its next frame
        (any thread). Other processes ignore the request; the durable flag reaches the holder anyway."""
        with self._lock:
            runner = self._slots.runners.get(session_id)
        loop = self._loop
        if runner is None or loop is None:
            return False
        loop.call_soon_threadsafe(runner.request_stop)
        return True

    # ------------------------------------------------------------ drain
    def draining(self) -> None:
        """Warm shutdown began: publish DRAINING; after ``drain_grace_s`` hand live sessions back."""
        if self.state != "READY":
            return
        self.state = "DRAINING"
        self._publish_quietly()
        self._drain_timer = threading.Timer(self.settings.drain_grace_s, self._drain_expired_now)
        self._drain_timer.daemon = True
        self._drain_timer.start()

    def _drain_expired_now(self) -> None:
        self._drain_expired = True
        self.hand_back_all()

    def hand_back_all(self) -> None:
        """Ask every running session to return to the queue for another worker."""
        with self._lock:
            runners = list(self._slots.runners.values())
        for runner in runners:
            runner.request_handback()
        if runners:
            log.warning("handing back live sessions", extra={**self._fields, "count": len(runners)})

    def abandon_all(self) -> None:
        """This process's liveness lapsed (the reaper may have taken its sessions): stop publishing."""
        with self._lock:
            runners = list(self._slots.runners.values())
        for runner in runners:
            runner.abandon()

    @property
    def liveness_steady(self) -> bool:
        """True when this process's own liveness beats have held for a whole TTL (so Redis kept the
        keys of others too): only then does its reaper pass judge other workers dead by theirs."""
        return self._heart is not None and self._heart.steady

    # ------------------------------------------------------------ registry and heartbeat
    def frame_counters(self) -> tuple[int, int]:
        """(frames, late frames) of every session this process ran or runs, since it started."""
        with self._lock:
            runners = list(self._slots.runners.values())
            frames, late = self._ended_frames, self._ended_late
        return frames + sum(r.frames for r in runners), late + sum(r.late_frames for r in runners)

    def info(self) -> WorkerInfo:
        pool = self.parts.pool
        stats = pool.stats() if pool is not None else None
        frames, late = self.frame_counters()
        return WorkerInfo(
            worker_id=self.worker_id,
            hostname=self.hostname,
            pid=os.getpid(),
            queues=self.queues,
            state=self.state,
            capacity=self.capacity,
            active_sessions=self.active,
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

    def _publish_quietly(self) -> bool:
        """Publish this worker's registry entry; False (logged) when the registry is unavailable."""
        try:
            self.parts.registry.publish(self.info(), ttl_s=self.settings.worker_ttl_s)
        except FarmError as exc:
            log.warning("registry publish failed", extra={**self._fields, "code": exc.code})
            return False
        return True

    def _publish_soon(self) -> None:
        """Publish from a thread: never block the loop on Redis."""
        if self._stopping.is_set():
            return
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.run_in_executor(None, self._publish_quietly)
        else:
            self._publish_quietly()

    async def _tick(self) -> None:
        """The loop's own liveness tick, apart from the heartbeat: a Redis call that hangs (a
        partition: connect timeouts and redis-py's retries) delays the heartbeat, not liveness;
        only a blocked loop stops ticking."""
        while not self._stopping.is_set():
            self._tick_at = time.monotonic()
            await asyncio.sleep(_TICK_S)

    async def _beat(self) -> None:
        """Publish the registry entry and run maintenance until stopped.

        Redis being down (an outage, a failover) is transient here: each step logs, and while Redis
        keeps failing the publish and maintenance intervals back off (doubling, capped at
        ``_MAX_BACKOFF_S``), so a long outage costs a few calls per worker, not a stream of them. No
        error ends the heartbeat: a dead heartbeat would let the registry entry lapse for good.
        """
        interval_s = min(self.settings.heartbeat_s, self.settings.reaper_interval_s, _TICK_S)
        next_publish = next_maintenance = time.monotonic()
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                if now >= next_publish:
                    self.check_memory()
                    self._metric_capacity()
                    published = await asyncio.to_thread(self._publish_quietly)
                    next_publish = now + self._publish_backoff.next_s(self.settings.heartbeat_s, published)
                if now >= next_maintenance and self.ready:
                    maintained = await asyncio.to_thread(self._maintain)
                    next_maintenance = now + self._maintain_backoff.next_s(
                        self.settings.reaper_interval_s, maintained
                    )
            except Exception:  # a bug in one step must not end the heartbeat
                log.exception("heartbeat step failed", extra=self._fields)
            await asyncio.sleep(interval_s)

    def _metric_capacity(self) -> None:
        if self.parts.metrics is not None:
            for pool in self.queues:
                self.parts.metrics.set_capacity(pool, self.free_slots)
                self.parts.metrics.set_ready(pool, self.ready)

    def check_memory(self) -> None:
        """Past ``worker_memory_limit_mb`` of RSS: turn ERROR (no new sessions, liveness fails) and
        hand every live session back, instead of waiting for the kernel's OOM killer."""
        limit_mb = self.settings.worker_memory_limit_mb
        if limit_mb <= 0 or self.state == "ERROR":
            return
        rss_mb = rss_mb_now()
        if rss_mb <= limit_mb:
            return
        self.state = "ERROR"
        self.error = f"RSS {rss_mb:.0f} MB passed the {limit_mb:.0f} MB ceiling"
        log.error("memory ceiling passed: handing sessions back", extra={**self._fields, "rss_mb": rss_mb})
        self.hand_back_all()
        self._publish_soon()

    def _maintain(self) -> bool:
        """Run each maintenance pass; False when Redis was unavailable for any of them."""
        reachable = True
        for task in self.parts.maintenance:
            try:
                task()
            except BackendUnavailable as exc:  # transient: the next pass (backed off) tries again
                reachable = False
                log.warning(
                    "maintenance pass skipped: redis unavailable",
                    extra={**self._fields, "error": exc.message},
                )
            except Exception:
                log.exception("maintenance pass failed", extra=self._fields)
        return reachable

    def _hot_avatars(self) -> list[tuple[ModelKind, AvatarSource]]:
        pool, hot_avatar = self.parts.pool, self.parts.hot_avatar
        wanted = self.settings.hot_avatars
        if pool is None or hot_avatar is None or ModelKind.ESSENCE not in pool.models or wanted <= 0:
            return []
        hot: list[tuple[ModelKind, AvatarSource]] = []
        try:
            for agent_id in self.parts.agents.most_used(wanted):
                if self.parts.agents.get(agent_id).status is AgentStatus.READY:
                    hot.append((ModelKind.ESSENCE, hot_avatar(agent_id)))
        except FarmError:
            log.warning("hot avatars unavailable", extra=self._fields)
        return hot

    @property
    def _fields(self) -> dict[str, object]:
        return {"worker_id": self.worker_id}
