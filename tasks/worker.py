"""``start_worker``: run a Celery render/build worker in this process (``farm worker`` calls it).

Defaults: the threads pool (tasks share the process's prewarmed ModelPool; torch and CUDA never
meet a fork), ``settings.worker_capacity`` concurrent sessions for render queues, one build at a time
for ``build``. Prefetch is disabled so the backlog stays visible to KEDA.
"""

from __future__ import annotations

import uuid

from farm import names
from farm.settings import Settings
from tasks.app import create_app
from tasks.context import EngineFactory
from tasks.routing import ALL_QUEUES


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
    app = create_app(settings, worker=True, engine_factory=engine_factory)
    app.worker_main(argv)
