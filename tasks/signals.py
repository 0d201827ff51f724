"""Worker hooks: prewarm in the right process, register in the worker registry, heartbeat, deregister.

* threads / solo pools: the tasks run in the main process, so the WorkerContext is built and
  prewarmed in ``worker_init`` — before the consumer starts, so nothing is consumed cold.
* prefork: each child builds its own in ``worker_process_init``. Nothing heavy (torch!) runs in the
  parent before the fork: a torch op before fork deadlocks the children (environment-notes §4), and
  CUDA never survives a fork.

A READY render process in the main process (threads / solo) also consumes its private queue
(``names.worker_queue``: warm routing) from ``worker_ready`` on, and advertises it in the registry.
Prefork children advertise none (their parent's consumer is shared), so they get shared-queue work only.

A failed prewarm leaves the worker up but ERROR in the registry; ``worker_ready`` then cancels its
consumers so it takes no session (and the task itself rejects while the pool is not READY).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, signals

from farm.settings import Settings
from tasks.context import EngineFactory, WorkerContext
from tasks.routing import ALL_QUEUES, worker_queue

log = logging.getLogger(__name__)

APP_ATTR = "farm_worker"


def current_context(app: Celery) -> WorkerContext | None:
    """The WorkerContext of this process, or None before its init hook ran."""
    ctx: WorkerContext | None = getattr(app, APP_ATTR, None)
    return ctx


def _pool_name(pool_cls: Any) -> str:
    return pool_cls if isinstance(pool_cls, str) else f"{pool_cls.__module__}.{pool_cls.__name__}"


def _selected_queues(app: Celery) -> list[str]:
    selected = app.amqp.queues.consume_from
    return sorted(selected) if selected else list(ALL_QUEUES)


def boot(
    app: Celery, settings: Settings, *, hostname: str, capacity: int, engine_factory: EngineFactory | None
) -> WorkerContext:
    """Build this process's context, publish STARTING, prewarm, publish READY/ERROR, start heartbeat."""
    ctx = WorkerContext.create(
        app,
        settings,
        hostname=hostname,
        queues=_selected_queues(app),
        capacity=capacity,
        engine_factory=engine_factory,
    )
    setattr(app, APP_ATTR, ctx)
    ctx.prewarm()
    if ctx.ready:
        ctx.start_dynamics()
    ctx.start_heartbeat()
    log.info(
        "worker ready" if ctx.ready else "worker prewarm failed: taking no sessions",
        extra={"worker_id": ctx.worker_id, "state": ctx.state},
    )
    return ctx


class WorkerHooks:
    """The lifecycle handlers of one app's workers (signals are global: each handler filters by app)."""

    def __init__(self, app: Celery, settings: Settings, engine_factory: EngineFactory | None) -> None:
        self.app = app
        self.settings = settings
        self.engine_factory = engine_factory

    def connect(self) -> None:
        signals.worker_init.connect(self.on_worker_init, weak=False)
        signals.worker_process_init.connect(self.on_process_init, weak=False)
        signals.worker_ready.connect(self.on_ready, weak=False)
        signals.worker_shutting_down.connect(self.on_shutting_down, weak=False)
        signals.worker_shutdown.connect(self.on_shutdown, weak=False)
        signals.worker_process_shutdown.connect(self.on_shutdown, weak=False)

    def _boot(self, hostname: str, capacity: int) -> None:
        factory = self.engine_factory
        boot(self.app, self.settings, hostname=hostname, capacity=capacity, engine_factory=factory)

    def on_worker_init(self, sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not self.app:
            return
        if "prefork" in _pool_name(sender.pool_cls):
            return  # each child prewarms in worker_process_init
        self._boot(sender.hostname, int(sender.concurrency))

    def on_process_init(self, sender: Any = None, **_: Any) -> None:
        if current_context(self.app) is not None:  # solo pool: already booted in worker_init
            return
        self._boot(str(sender or f"worker-{os.getpid()}"), 1)

    def on_ready(self, sender: Any = None, **_: Any) -> None:
        ctx = current_context(self.app)
        if ctx is None or getattr(sender, "app", None) is not self.app:
            return
        if ctx.ready:
            if ctx.pool is not None:  # a render process: also consume its private warm-routing queue
                private = worker_queue(ctx.worker_id).name
                sender.add_task_queue(private, exchange=private, routing_key=private)
                ctx.consuming_warm_queue(private)
            return
        for queue in ctx.queues:
            sender.cancel_task_queue(queue)
        log.error("consumers cancelled: prewarm failed", extra={"worker_id": ctx.worker_id})

    def on_shutting_down(self, **_: Any) -> None:
        ctx = current_context(self.app)
        if ctx is not None:
            ctx.draining()

    def on_shutdown(self, **_: Any) -> None:
        ctx = current_context(self.app)
        if ctx is not None:
            ctx.stop()


def install_worker_hooks(app: Celery, settings: Settings, *, engine_factory: EngineFactory | None) -> None:
    """Connect the worker lifecycle signals for ``app``."""
    WorkerHooks(app, settings, engine_factory).connect()
