"""WorkerContext: everything one worker process needs to run sessions, built once by its init hook.

It owns the ModelPool (prewarmed engines, avatar cache), the Redis-backed stores, the registry entry
of this process and the heartbeat thread that refreshes it and runs the reaper. Tasks reach it
through the Celery app (``app.farm_worker``), never through a module global.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
from celery import Celery

from farm.blobs import BlobStore
from farm.contracts import RunSessionMessage, WorkerInfo, WorkerState
from farm.domain import AgentStatus, ModelKind, Session
from farm.errors import FarmError, PrewarmFailed
from farm.redis_conn import connect
from farm.render.base import AvatarSource, RenderEngine
from farm.render.pool import ModelPool, PoolState
from farm.render.registry import create_engine
from farm.sessions.agents import RedisAgentStore
from farm.sessions.reaper import Reaper, RedisReaperLock
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import RedisWorkerRegistry
from farm.sessions.runner import DynamicsAttachment, SessionIO, SessionRunner
from farm.sessions.warm import StrandedRescuer
from farm.sessions.wiring import AvatarResolver, FileSessionIo
from farm.settings import Settings
from tasks.producer import CelerySessionQueue
from tasks.routing import models_for_queues

if TYPE_CHECKING:
    from farm.dynamics.worker import WorkerDynamics

log = logging.getLogger(__name__)

EngineFactory = Callable[[ModelKind], RenderEngine]


class WorkerSessionIo:
    """The worker's io_factory: room sessions (``Session.livekit``) join LiveKit, the rest record an MP4.

    The LiveKit wiring is imported on the first room session, in the process (thread) that runs it:
    the LiveKit FFI starts native threads, which must never exist in a prefork parent before fork.
    """

    def __init__(
        self,
        settings: Settings,
        blobs: BlobStore,
        pool: ModelPool | None,
        resolve_avatar: Callable[[Session], AvatarSource],
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._resolve = resolve_avatar
        self._file = FileSessionIo(settings, blobs)
        self._room: Callable[[Session], SessionIO] | None = None

    def __call__(self, session: Session) -> SessionIO:
        if not session.livekit:
            return self._file(session)
        if self._room is None:
            from farm.stream.livekit.wiring import RoomSessionIo

            assert self._pool is not None, "room sessions need a render worker"
            self._room = RoomSessionIo(self._settings, self._pool, self._resolve)
        return self._room(session)


@dataclass
class WorkerContext:
    settings: Settings
    worker_id: str
    hostname: str
    queues: list[str]
    capacity: int
    redis: redis.Redis
    store: RedisSessionStore
    agents: RedisAgentStore
    blobs: BlobStore
    registry: RedisWorkerRegistry
    session_queue: CelerySessionQueue
    reaper: Reaper
    rescuer: StrandedRescuer
    pool: ModelPool | None
    resolve_avatar: AvatarResolver
    io_factory: WorkerSessionIo
    state: WorkerState = "STARTING"
    started_at: float = field(default_factory=time.time)
    ready_at: float | None = None
    warm_queue: str | None = None  # set once the consumer reads this process's private queue
    _active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _heartbeat: threading.Thread | None = None
    _runners: set[SessionRunner] = field(default_factory=set)
    dynamics: WorkerDynamics | None = None
    _drain_timer: threading.Timer | None = None

    @classmethod
    def create(
        cls,
        app: Celery,
        settings: Settings,
        *,
        hostname: str,
        queues: list[str],
        capacity: int,
        engine_factory: EngineFactory | None = None,
    ) -> WorkerContext:
        assert settings.redis_url, "the worker needs settings.redis_url"
        client = connect(settings.redis_url)
        worker_id = f"{hostname}:{os.getpid()}"
        blobs = BlobStore(settings.blob_dir)
        agents = RedisAgentStore(client)
        store = RedisSessionStore(client, idempotency_ttl_s=settings.max_session_s)
        models = models_for_queues(queues)
        factory = engine_factory or (lambda model: create_engine(model, settings))
        pool = ModelPool(models, factory, avatar_cache_mb=settings.avatar_cache_mb) if models else None
        lock = RedisReaperLock(client, worker_id, ttl_s=settings.reaper_interval_s)
        session_queue = CelerySessionQueue(app)
        reaper = Reaper(store, session_queue, lock, max_attempts=settings.max_attempts)
        resolver = AvatarResolver(settings, agents, blobs)
        registry = RedisWorkerRegistry(client)
        rescuer = StrandedRescuer(client, registry, session_queue, settings.warm_route_max_wait_s)
        return cls(
            settings=settings,
            worker_id=worker_id,
            hostname=hostname,
            queues=queues,
            capacity=capacity,
            redis=client,
            store=store,
            agents=agents,
            blobs=blobs,
            registry=registry,
            session_queue=session_queue,
            reaper=reaper,
            rescuer=rescuer,
            pool=pool,
            resolve_avatar=resolver,
            io_factory=WorkerSessionIo(settings, blobs, pool, resolver),
        )

    # ------------------------------------------------------------ lifecycle
    def prewarm(self) -> None:
        """Prewarm the pool (bounded) and publish READY, or ERROR on failure; never raises."""
        self.publish()
        if self.pool is None:
            self.state = "READY"
        elif not self.settings.prewarm:
            self.pool.mark_ready_lazy()
            self.state = "READY"
        else:
            try:
                self.pool.prewarm(self.settings.prewarm_timeout_s, hot=self._hot_avatars())
                self.state = "READY"
            except PrewarmFailed:
                self.state = "ERROR"
        if self.state == "READY":
            self.ready_at = time.time()
        self.publish()

    def consuming_warm_queue(self, name: str) -> None:
        """The consumer now reads this process's private queue: advertise it for warm routing."""
        self.warm_queue = name
        self._publish_quietly()

    def _hot_avatars(self) -> list[tuple[ModelKind, AvatarSource]]:
        if self.pool is None or ModelKind.ESSENCE not in self.pool.models or self.settings.hot_avatars <= 0:
            return []
        hot: list[tuple[ModelKind, AvatarSource]] = []
        try:
            for agent_id in self.agents.most_used(self.settings.hot_avatars):
                agent = self.agents.get(agent_id)
                if agent.status is AgentStatus.READY:
                    source = self.resolve_avatar.for_agent(agent_id, ModelKind.ESSENCE)
                    hot.append((ModelKind.ESSENCE, source))
        except FarmError:
            log.warning("hot avatars unavailable", extra={"worker_id": self.worker_id})
        return hot

    def start_dynamics(self) -> None:
        """Subscribe this render process to the dynamics topic (gesture triggers fanned out by Redis)."""
        if self.pool is None or self.dynamics is not None:
            return
        from farm.dynamics.worker import WorkerDynamics

        try:
            self.dynamics = WorkerDynamics.connect(str(self.settings.redis_url), self.worker_id)
        except Exception:
            log.exception("dynamics unavailable: gestures only from session input", extra=self._fields)

    def attach_dynamics(
        self, session: Session, gestures: Sequence[str], deliver: Callable[[str], None]
    ) -> DynamicsAttachment:
        """The runner's hook: register a running session with this process's dynamics router."""
        assert self.dynamics is not None
        return self.dynamics.attach(
            session_id=session.id,
            tenant=session.tenant,
            agent_id=session.avatar_id,
            gestures=gestures,
            trigger=deliver,
        )

    @property
    def _fields(self) -> dict[str, object]:
        return {"worker_id": self.worker_id}

    def start_heartbeat(self) -> None:
        self._heartbeat = threading.Thread(target=self._beat, name="farm-heartbeat", daemon=True)
        self._heartbeat.start()

    def draining(self) -> None:
        """Warm shutdown began: publish DRAINING; after ``drain_grace_s`` hand live sessions back."""
        if self.state != "READY":
            return
        self.state = "DRAINING"
        self._publish_quietly()
        self._drain_timer = threading.Timer(self.settings.drain_grace_s, self.hand_back_all)
        self._drain_timer.daemon = True
        self._drain_timer.start()

    def hand_back_all(self) -> None:
        """Ask every running session to return to the queue for another worker."""
        with self._lock:
            runners = list(self._runners)
        for runner in runners:
            runner.request_handback()
        if runners:
            fields = {"worker_id": self.worker_id, "count": len(runners)}
            log.warning("handing back live sessions", extra=fields)

    def resubmit(self, session: Session) -> None:
        """Re-queue a handed-back session on its model's queue."""
        self.session_queue.submit(RunSessionMessage(session_id=session.id, model=session.model))

    def stop(self) -> None:
        """Stop the heartbeat and deregister. Idempotent."""
        self._stop.set()
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join(timeout=2)
        with contextlib.suppress(FarmError):
            self.registry.remove(self.worker_id)
        if self.warm_queue is not None:
            self.warm_queue = None
            with contextlib.suppress(FarmError):
                self.session_queue.delete_worker_queue(self.worker_id)
        if self.dynamics is not None:
            with contextlib.suppress(Exception):
                self.dynamics.close()
        if self.pool is not None:
            self.pool.close()

    @property
    def ready(self) -> bool:
        pool_ready = self.pool is None or self.pool.state is PoolState.READY
        return self.state == "READY" and pool_ready

    @contextlib.contextmanager
    def active_session(self, runner: SessionRunner) -> Iterator[None]:
        with self._lock:
            self._active += 1
            self._runners.add(runner)
        self._publish_quietly()
        if self.state == "DRAINING" and self._drain_timer is not None and not self._drain_timer.is_alive():
            runner.request_handback()  # started after the grace period ran out
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                self._runners.discard(runner)
            self._publish_quietly()

    # ------------------------------------------------------------ registry and heartbeat
    def info(self) -> WorkerInfo:
        stats = self.pool.stats() if self.pool is not None else None
        return WorkerInfo(
            worker_id=self.worker_id,
            hostname=self.hostname,
            pid=os.getpid(),
            queues=self.queues,
            state=self.state,
            capacity=self.capacity,
            active_sessions=self._active,
            prewarm_s=stats.prewarm_s if stats else None,
            models=stats.models if stats else [],
            backend=stats.backend if stats else None,
            hot_avatars=stats.hot_avatars if stats else [],
            cached_avatars=stats.cached_keys if stats else [],
            warm_queue=self.warm_queue if self.state == "READY" else None,
            avatar_hits=stats.avatar_hits if stats else 0,
            avatar_misses=stats.avatar_misses if stats else 0,
            error=stats.error if stats else None,
            started_at=self.started_at,
            ready_at=self.ready_at,
        )

    def publish(self) -> None:
        self.registry.publish(self.info(), ttl_s=self.settings.worker_ttl_s)

    def _publish_quietly(self) -> None:
        try:
            self.publish()
        except FarmError:
            log.warning("registry publish failed", extra={"worker_id": self.worker_id})

    def _beat(self) -> None:
        next_reap = time.monotonic()
        while not self._stop.wait(min(self.settings.heartbeat_s, self.settings.reaper_interval_s)):
            self._publish_quietly()
            if time.monotonic() >= next_reap and self.ready:
                next_reap = time.monotonic() + self.settings.reaper_interval_s
                try:
                    self.reaper.run_once()
                    self.rescuer.run_once()
                except Exception:
                    log.exception("reaper pass failed", extra={"worker_id": self.worker_id})
