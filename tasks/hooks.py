"""Worker process hooks: build the WorkerRuntime in the right process, start it, drain and stop it.

* threads / solo pools: the tasks run in the main process, so the runtime is built and prewarmed in
  ``worker_init``, before the consumer starts, so nothing is consumed cold.
* prefork: each child builds its own in ``worker_process_init``. Nothing heavy (torch!) runs in the
  parent before the fork: a torch op before fork deadlocks the children, and CUDA never survives a
  fork.

A READY render process in the main process (threads / solo) also consumes its private queue
(warm routing) from ``worker_ready`` on, and advertises it in the registry. Prefork children
advertise none (their parent's consumer is shared), so they get shared-queue work only.

A failed prewarm leaves the worker up but ERROR in the registry; ``worker_ready`` then cancels its
consumers so it takes no session (and the task itself rejects while the runtime is not READY).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from celery import Celery, signals

from farm.infra.redis_conn import connect
from farm.kernel.errors import FarmError
from farm.kernel.models import engines_for_queues
from farm.kernel.settings import Settings
from farm.sessions.previews import PreviewStore, RedisPreviewStore
from farm.worker.middleware import WorkerMiddleware
from farm.worker.redis_runtime import EngineFactory, redis_runtime
from farm.worker.runtime import WorkerRuntime
from tasks.janitor import WorkerQueueJanitor
from tasks.producer import CelerySessionQueue
from tasks.routing import ALL_QUEUES, worker_kombu_queue

log = logging.getLogger(__name__)

APP_ATTR = "farm_runtime"
JANITOR_ATTR = "farm_queue_janitor"
PREVIEWS_ATTR = "farm_previews"


def current_runtime(app: Celery) -> WorkerRuntime | None:
    """The WorkerRuntime of this process, or None before its init hook ran."""
    runtime: WorkerRuntime | None = getattr(app, APP_ATTR, None)
    return runtime


def current_previews(app: Celery) -> PreviewStore | None:
    """Where this process reads and finishes face previews (``farm.agent.preview``), once booted."""
    previews: PreviewStore | None = getattr(app, PREVIEWS_ATTR, None)
    return previews


def _pool_name(pool_cls: Any) -> str:
    return pool_cls if isinstance(pool_cls, str) else f"{pool_cls.__module__}.{pool_cls.__name__}"


def _selected_queues(app: Celery) -> list[str]:
    selected = app.amqp.queues.consume_from
    return sorted(selected) if selected else list(ALL_QUEUES)


class BrokerMiddleware(WorkerMiddleware):
    """The Celery side of a worker process, as runtime middleware.

    * Consumption follows admission: when the runtime's measured cost leaves no room although a
      thread is free, the worker stops consuming its queues (remote control, handled by its own
      consumer thread) and resumes when room comes back, so deliveries never bounce between a full
      worker and the queue.
    * On stop: this worker's private queue and its janitor entry are deleted.
    """

    name = "broker"

    def __init__(self, app: Celery, session_queue: CelerySessionQueue, janitor: WorkerQueueJanitor) -> None:
        self._app = app
        self._queue = session_queue
        self._janitor = janitor
        self._paused = False

    def on_tick(self, runtime: WorkerRuntime) -> None:
        if not runtime.ready or runtime.parts.pool is None:
            return
        full = (
            runtime.free_slots == 0 and runtime.slots.used < runtime.slots.capacity
        )  # by cost, not by slots
        if full == self._paused:
            return
        self._paused = full
        queues = [*runtime.queues, *([runtime.warm_queue] if runtime.warm_queue else [])]
        control = self._app.control
        for queue in queues:
            with contextlib.suppress(Exception):
                if full:
                    control.cancel_consumer(queue, destination=[runtime.hostname])
                else:
                    control.add_consumer(queue, destination=[runtime.hostname])
        log.info("consumption " + ("paused" if full else "resumed"), extra=runtime.fields)

    def on_stop(self, runtime: WorkerRuntime) -> None:
        if runtime.warm_queue is not None:
            with contextlib.suppress(FarmError):
                self._queue.delete_worker_queue(runtime.worker_id)
        with contextlib.suppress(FarmError):
            self._janitor.remove(runtime.worker_id)


def boot(
    app: Celery, settings: Settings, *, hostname: str, capacity: int, engine_factory: EngineFactory | None
) -> WorkerRuntime:
    """Build this process's runtime, prewarm (STARTING → READY | ERROR), start its loop and heartbeat."""
    queues = _selected_queues(app)
    session_queue = CelerySessionQueue(app)
    assert settings.redis_url, "the worker needs settings.redis_url"
    janitor = WorkerQueueJanitor(connect(settings.redis_url), session_queue.delete_worker_queue)
    runtime = redis_runtime(
        settings,
        session_queue,
        hostname=hostname,
        queues=queues,
        models=engines_for_queues(queues, settings),
        capacity=capacity,
        engine_factory=engine_factory,
        middleware=[BrokerMiddleware(app, session_queue, janitor)],
        cleaners=(janitor.sweep,),
    )
    setattr(app, APP_ATTR, runtime)
    setattr(app, JANITOR_ATTR, janitor)
    setattr(app, PREVIEWS_ATTR, RedisPreviewStore(connect(settings.redis_url)))
    with contextlib.suppress(FarmError):  # indexed before it declares anything in the broker
        janitor.add(runtime.worker_id)
    runtime.prewarm()
    runtime.start()
    log.info(
        "worker ready" if runtime.ready else "worker prewarm failed: taking no sessions",
        extra={"worker_id": runtime.worker_id, "state": runtime.state},
    )
    return runtime


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
        if current_runtime(self.app) is not None:  # solo pool: already booted in worker_init
            return
        self._boot(str(sender or f"worker-{os.getpid()}"), 1)

    def on_ready(self, sender: Any = None, **_: Any) -> None:
        runtime = current_runtime(self.app)
        if runtime is None or getattr(sender, "app", None) is not self.app:
            return
        if runtime.ready:
            if runtime.parts.pool is not None:  # a render process: also consume its warm-routing queue
                private = worker_kombu_queue(runtime.worker_id).name
                sender.add_task_queue(private, exchange=private, routing_key=private)
                runtime.consuming_warm_queue(private)
            return
        for queue in runtime.queues:
            sender.cancel_task_queue(queue)
        log.error("consumers cancelled: prewarm failed", extra={"worker_id": runtime.worker_id})

    def on_shutting_down(self, **_: Any) -> None:
        runtime = current_runtime(self.app)
        if runtime is not None:
            runtime.drain.begin()

    def on_shutdown(self, **_: Any) -> None:
        runtime = current_runtime(self.app)
        if runtime is not None:
            runtime.stop()


def install_worker_hooks(app: Celery, settings: Settings, *, engine_factory: EngineFactory | None) -> None:
    """Connect the worker lifecycle signals for ``app``."""
    WorkerHooks(app, settings, engine_factory).connect()
