"""The production WorkerRuntime of a worker process: Redis stores, the engine registry, dynamics.

``redis_runtime`` wires the parts; the Celery layer (``tasks.hooks``) calls it from the right
process hook and hands it the broker-side pieces it owns (the SessionQueue, the private-queue
cleanup). Nothing here knows Celery.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from farm.infra.blobs import BlobStore
from farm.infra.redis_conn import connect
from farm.kernel import names
from farm.kernel.contracts import SpeakMessage
from farm.kernel.domain import ModelKind, Session
from farm.kernel.settings import Settings
from farm.render.base import RenderEngine
from farm.render.pool import ModelPool
from farm.render.registry import create_engine
from farm.sessions.agents import RedisAgentStore
from farm.sessions.base import SessionQueue
from farm.sessions.liveness import RedisWorkerLiveness
from farm.sessions.reaper import QueuePolicy, Reaper, RedisOnce, RedisReaperLock
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import RedisWorkerRegistry
from farm.sessions.runner import DynamicsAttachment
from farm.sessions.warm import StrandedRescuer
from farm.tenancy.metering import Metering, RedisLedger, meter_minute
from farm.worker.runtime import RuntimeParts, WorkerRuntime
from farm.worker.wiring import AvatarResolver, WorkerSessionIo

log = logging.getLogger(__name__)

EngineFactory = Callable[[ModelKind], RenderEngine]


def redis_runtime(
    settings: Settings,
    queue: SessionQueue,
    *,
    hostname: str,
    queues: list[str],
    models: Sequence[ModelKind],
    capacity: int,
    engine_factory: EngineFactory | None = None,
    on_stop: Sequence[Callable[[], object]] = (),
    cleaners: Sequence[Callable[[], object]] = (),
) -> WorkerRuntime:
    """The runtime of this process over ``settings.redis_url`` (not yet prewarmed or started).

    ``cleaners`` run in the fleet-wide reaper pass (the Celery layer's dead-worker queue sweep)."""
    assert settings.redis_url, "the worker needs settings.redis_url"
    client = connect(settings.redis_url)
    worker_id = f"{hostname}:{os.getpid()}"
    blobs = BlobStore(settings.blob_dir)
    agents = RedisAgentStore(client)
    store = RedisSessionStore(client, idempotency_ttl_s=settings.max_session_s)
    factory = engine_factory or (lambda model: create_engine(model, settings))
    pool = ModelPool(list(models), factory, avatar_cache_mb=settings.avatar_cache_mb) if models else None
    registry = RedisWorkerRegistry(client)
    liveness = RedisWorkerLiveness(client)
    reaper = Reaper(
        store,
        queue,
        RedisReaperLock(client, worker_id, ttl_s=settings.reaper_interval_s),
        max_attempts=settings.max_attempts,
        liveness=liveness,
        trust_liveness=lambda: runtime.liveness_steady,
        # a read slower than this may have outlasted a key's TTL: it judges nobody
        liveness_read_limit_s=max(
            settings.liveness_renew_s, settings.liveness_ttl_s - settings.liveness_renew_s
        ),
        queue_policy=QueuePolicy(settings.queue_resubmit_s, settings.queue_deadline_s),
        once=RedisOnce(client),
        cleaners=cleaners,
        scan_lock=RedisReaperLock(
            client, worker_id, ttl_s=settings.orphan_scan_s, key=names.REAPER_SCAN_LOCK_KEY
        ),
    )
    rescuer = StrandedRescuer(client, registry, queue, settings.warm_route_max_wait_s)
    resolver = AvatarResolver(settings, agents, blobs)
    metering = Metering(RedisLedger(client))
    parts = RuntimeParts(
        store=store,
        queue=queue,
        registry=registry,
        agents=agents,
        pool=pool,
        io_factory=WorkerSessionIo(settings, blobs),
        resolve_avatar=resolver,
        hot_avatar=lambda agent_id: resolver.for_agent(agent_id, ModelKind.ESSENCE),
        maintenance=(reaper.run_once, rescuer.run_once),
        meter=lambda session, minute, token: meter_minute(metering, session, minute, token).value,
        on_stop=on_stop,
        liveness=liveness,
    )
    runtime = WorkerRuntime(
        settings, parts, worker_id=worker_id, hostname=hostname, queues=queues, capacity=capacity
    )
    return runtime


def start_dynamics(runtime: WorkerRuntime, settings: Settings) -> None:
    """Subscribe a READY render process to the dynamics topic (gestures fanned out by Redis)."""
    if runtime.parts.pool is None or runtime.parts.attach_dynamics is not None:
        return
    from farm.dynamics.worker import WorkerDynamics

    try:
        dynamics = WorkerDynamics.connect(str(settings.redis_url), runtime.worker_id)
    except Exception:
        log.exception("dynamics unavailable: gestures only from session input", extra=runtime._fields)
        return

    def attach(
        session: Session, gestures: Sequence[str], deliver: Callable[[str], None]
    ) -> DynamicsAttachment:
        return dynamics.attach(
            session_id=session.id,
            tenant=session.tenant,
            agent_id=session.avatar_id,
            gestures=gestures,
            trigger=deliver,
        )

    runtime.parts.attach_dynamics = attach
    runtime.parts.on_stop = (*runtime.parts.on_stop, dynamics.close)


def start_speech(runtime: WorkerRuntime, settings: Settings) -> None:
    """Subscribe a READY render process to ``farm:speak``: ``POST /v1/agent/{code}/speak`` plays on
    the live session this process holds; other processes ignore the message."""
    if runtime.parts.pool is None:
        return
    from farm.infra.speak import RedisSpeakBus, decode_speech

    def handle(message: SpeakMessage) -> None:
        if runtime.speak(message.session_id, *decode_speech(message)):
            log.info("speech played", extra={"session_id": message.session_id, **runtime._fields})

    try:
        bus = RedisSpeakBus(str(settings.redis_url))
        bus.start(handle)
    except Exception:
        log.exception("speech topic unavailable: /speak reaches no session here", extra=runtime._fields)
        return
    runtime.parts.on_stop = (*runtime.parts.on_stop, bus.close)


def start_stop_notices(runtime: WorkerRuntime, settings: Settings) -> None:
    """Subscribe a READY render process to ``farm:stop``: a client's stop request ends the session
    this process holds at its next frame rather than at its next lease renewal."""
    from farm.infra.pubsub import RedisTopic
    from farm.kernel.contracts import StopMessage

    def handle(message: StopMessage) -> None:
        if runtime.stop_session(message.session_id):
            log.info("stop notice", extra={"session_id": message.session_id, **runtime._fields})

    try:
        topic: RedisTopic[StopMessage, None] = RedisTopic(
            str(settings.redis_url), names.STOP_TOPIC, StopMessage
        )
        topic.start(handle)
    except Exception:
        log.exception("stop topic unavailable: stops wait for lease renewals here", extra=runtime._fields)
        return
    runtime.parts.on_stop = (*runtime.parts.on_stop, topic.close)


def start_health(runtime: WorkerRuntime, settings: Settings) -> None:
    """Serve /startupz, /readyz, /livez, /drainz (and /metrics) for Kubernetes on ``health_port``.

    One worker per pod in Kubernetes; on one machine (``farm up``, tests) several workers share the
    host, so a port already in use is logged and the worker runs without the endpoint.
    """
    if settings.health_port <= 0:
        return
    import time

    from farm.worker.health import HealthServer, WorkerHealth
    from farm.worker.metrics import WorkerMetrics, render_latest

    metrics = WorkerMetrics()
    runtime.parts.metrics = metrics

    def read() -> WorkerHealth:
        state = "DRAINING" if runtime.state == "DRAINING" else runtime.state
        progress_at = time.monotonic() - runtime.progress_age_s()
        return WorkerHealth(state, progress_at, live_sessions=runtime.active, error=runtime.error)

    try:
        server = HealthServer(
            read,
            port=settings.health_port,
            stale_s=settings.progress_stale_s,
            on_drain=runtime.stop_intake,
            max_drain_s=settings.max_session_s,
            metrics=lambda: render_latest(metrics),
        ).start()
    except OSError:
        log.warning(
            "health endpoint not started: port in use",
            extra={**runtime._fields, "port": settings.health_port},
        )
        return
    runtime.parts.on_stop = (*runtime.parts.on_stop, server.close)
