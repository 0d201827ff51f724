"""The production WorkerRuntime of a worker process: Redis stores, the engine registry, middleware.

``redis_runtime`` wires the parts and the middleware in their declared order
(``farm.worker.middleware.MIDDLEWARE_ORDER``); the Celery layer (``tasks.hooks``) calls it from the
right process hook and hands it the broker-side pieces it owns (the SessionQueue, its private-queue
clean-up as one more middleware). Nothing here knows Celery.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from farm.infra.blobs import BlobStore
from farm.infra.redis_conn import connect
from farm.kernel import names
from farm.kernel.domain import AgentStatus, ModelKind
from farm.kernel.errors import FarmError
from farm.kernel.settings import Settings
from farm.render.base import AvatarSource, RenderEngine
from farm.render.pool import ModelPool
from farm.render.registry import create_engine
from farm.sessions.agents import RedisAgentStore
from farm.sessions.base import SessionQueue
from farm.sessions.liveness import RedisWorkerLiveness
from farm.sessions.reaper import QueuePolicy, Reaper, RedisOnce, RedisReaperLock, RedisRestartWatch
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import RedisWorkerRegistry
from farm.sessions.warm import StrandedRescuer
from farm.tenancy.metering import Metering, RedisLedger, meter_minute
from farm.worker.admission import CostAdmission
from farm.worker.liveness import LivenessMiddleware
from farm.worker.memory import MemoryCeiling
from farm.worker.metrics import MetricsMiddleware, WorkerMetrics, render_latest
from farm.worker.middleware import WorkerMiddleware
from farm.worker.runtime import RuntimeParts, WorkerRuntime
from farm.worker.topics import DynamicsTopic, HealthEndpoint, SpeechTopic, StopNotices
from farm.worker.tracing import Tracing
from farm.worker.wiring import AvatarResolver, WorkerSessionIo

log = logging.getLogger(__name__)

EngineFactory = Callable[[str], RenderEngine]


def redis_runtime(
    settings: Settings,
    queue: SessionQueue,
    *,
    hostname: str,
    queues: list[str],
    models: Sequence[str],
    capacity: int,
    engine_factory: EngineFactory | None = None,
    middleware: Sequence[WorkerMiddleware] = (),
    cleaners: Sequence[Callable[[], object]] = (),
) -> WorkerRuntime:
    """The runtime of this process over ``settings.redis_url`` (not yet prewarmed or started).

    ``middleware`` is added to the farm's own (the Celery layer's broker clean-up); ``cleaners`` run
    in the fleet-wide reaper pass (the Celery layer's dead-worker queue sweep)."""
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
    heart = LivenessMiddleware(
        liveness, store, ttl_s=settings.liveness_ttl_s, renew_s=settings.liveness_renew_s
    )
    reaper = Reaper(
        store,
        queue,
        RedisReaperLock(client, worker_id, ttl_s=settings.reaper_interval_s),
        max_attempts=settings.max_attempts,
        liveness=liveness,
        trust_liveness=lambda: heart.steady,
        # a read slower than this may have outlasted a key's TTL: it judges nobody
        liveness_read_limit_s=max(
            settings.liveness_renew_s, settings.liveness_ttl_s - settings.liveness_renew_s
        ),
        queue_policy=QueuePolicy(settings.queue_resubmit_s, settings.queue_deadline_s),
        once=RedisOnce(client),
        restarts=RedisRestartWatch(client),
        cleaners=cleaners,
        scan_lock=RedisReaperLock(
            client, worker_id, ttl_s=settings.orphan_scan_s, key=names.REAPER_SCAN_LOCK_KEY
        ),
    )
    rescuer = StrandedRescuer(client, registry, queue, settings.warm_route_max_wait_s)
    resolver = AvatarResolver(settings, agents, blobs)
    metering = Metering(RedisLedger(client))
    dynamics = DynamicsTopic(settings)
    metrics = WorkerMetrics()
    session_io = WorkerSessionIo(settings, blobs)
    parts = RuntimeParts(
        store=store,
        queue=queue,
        registry=registry,
        agents=agents,
        pool=pool,
        io_factory=session_io,
        resolve_avatar=resolver,
        hot_avatars=lambda: hot_avatars(settings, pool, agents, resolver),
        warm_io=session_io.warm,
        attach_dynamics=dynamics.attach,
        maintenance=(reaper.run_once, rescuer.run_once),
        meter=lambda session, minute, token: meter_minute(metering, session, minute, token).value,
    )
    own: list[WorkerMiddleware] = [
        heart,
        MemoryCeiling(settings.worker_memory_limit_mb),
        CostAdmission.from_settings(settings),
        MetricsMiddleware(metrics),
        Tracing(),
        dynamics,
        SpeechTopic(settings),
        StopNotices(settings),
        HealthEndpoint(settings, metrics=lambda: render_latest(metrics)),
    ]
    return WorkerRuntime(
        settings,
        parts,
        worker_id=worker_id,
        hostname=hostname,
        queues=queues,
        capacity=capacity,
        middleware=[*own, *middleware],
    )


def hot_avatars(
    settings: Settings, pool: ModelPool | None, agents: RedisAgentStore, resolver: AvatarResolver
) -> list[tuple[ModelKind, AvatarSource]]:
    """The most used READY Essence agents, preloaded at prewarm (``hot_avatars`` of them)."""
    wanted = settings.hot_avatars
    if pool is None or ModelKind.ESSENCE not in pool.models or wanted <= 0:
        return []
    hot: list[tuple[ModelKind, AvatarSource]] = []
    try:
        for agent_id in agents.most_used(wanted):
            if agents.get(agent_id).status is AgentStatus.READY:
                hot.append((ModelKind.ESSENCE, resolver.for_agent(agent_id, ModelKind.ESSENCE)))
    except FarmError:
        log.warning("hot avatars unavailable")
    return hot
