"""Worker entrypoints: the worker app (tasks and process hooks registered) and ``start_worker``.

Defaults: the threads pool (tasks share the process's WorkerRuntime and prewarmed ModelPool; torch
and CUDA never meet a fork), ``settings.worker_capacity`` concurrent sessions for render queues, one
build at a time for ``build``. Prefetch is disabled so the backlog stays visible to the scaler.
"""

from __future__ import annotations

import uuid

from celery import Celery

from farm.kernel import names
from farm.kernel.settings import Settings
from farm.worker.redis_runtime import EngineFactory
from tasks.app import create_app
from tasks.hooks import install_worker_hooks
from tasks.routing import ALL_QUEUES
from tasks.tasks import register_tasks


def create_worker_app(settings: Settings, *, engine_factory: EngineFactory | None = None) -> Celery:
    """The configured app with the farm's tasks and the worker process hooks.

    ``engine_factory`` (``ModelKind -> RenderEngine``) replaces the engine registry; tests use it.
    """
    app = create_app(settings)
    register_tasks(app)
    install_worker_hooks(app, settings, engine_factory=engine_factory)
    return app


def default_concurrency(settings: Settings, queues: list[str]) -> int:
    render = any(q in (names.QUEUE_ESSENCE, names.QUEUE_EXPRESSION) for q in queues)
    return settings.worker_capacity if render else 1


def worker_argv(
    settings: Settings,
    queues: list[str],
    concurrency: int | None = None,
    pool: str | None = None,
    *,
    loglevel: str = "INFO",
    nodename: str | None = None,
) -> list[str]:
    """The ``celery worker`` command line for these queues (also what ``celery -A`` users should pass)."""
    unknown = sorted(set(queues) - set(ALL_QUEUES))
    if not queues or unknown:
        raise ValueError(f"queues must be among {list(ALL_QUEUES)}; got {queues}")
    name = nodename or f"{'+'.join(queues)}-{uuid.uuid4().hex[:6]}@%h"
    return [
        "worker",
        f"--queues={','.join(queues)}",
        f"--pool={pool or 'threads'}",
        f"--concurrency={concurrency or default_concurrency(settings, queues)}",
        f"--hostname={name}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
        "--task-events",
    ]


def start_worker(
    settings: Settings,
    queues: list[str],
    concurrency: int | None = None,
    pool: str | None = None,
    *,
    engine_factory: EngineFactory | None = None,
    loglevel: str = "INFO",
    nodename: str | None = None,
) -> None:
    """Run a worker for ``queues`` until it is stopped (blocking)."""
    argv = worker_argv(settings, queues, concurrency, pool, loglevel=loglevel, nodename=nodename)
    create_worker_app(settings, engine_factory=engine_factory).worker_main(argv)
