"""Worker middleware: cross-cutting concerns of the WorkerRuntime core, as objects with no-op hooks.

The core (``farm.worker.runtime``) claims, runs, leases and releases sessions; everything else a
worker does around that (Prometheus metrics, the memory ceiling, the liveness heart, tracing,
admission by measured cost, topic subscriptions, the health endpoint, broker clean-up) is a
middleware given to the runtime at construction, in a declared order (``MIDDLEWARE_ORDER``), as
dramatiq's Middleware and Celery's bootsteps do. Nothing is attached or mutated afterwards.

Hooks run in list order, except ``on_stop`` (reverse order: last started, first stopped).
``on_tick`` runs on the heartbeat (every ``heartbeat_s``, off the event loop); ``before_claim`` and
``after_claim``/``on_session_end`` on the runtime's loop (keep them cheap: a Redis call belongs in a
thread); ``limit_free_slots`` may only lower what the core would advertise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from farm.kernel.contracts import RunSessionMessage

if TYPE_CHECKING:
    from farm.sessions.runner import RunResult, SessionRunner
    from farm.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)

MIDDLEWARE_ORDER = (
    "liveness",  # the heart beats before the first claim and stops after the last release
    "memory",  # a worker over its ceiling turns ERROR before admission looks at it
    "admission",  # measured cost: what the registry advertises and what the worker accepts
    "metrics",  # Prometheus: counts what admission let in
    "tracing",  # one structured span per session, with its timings and pump figures
    "dynamics",  # gesture topic: attaches to sessions the core starts
    "speech",  # /v1/agent/{id}/speak topic
    "stop-notices",  # farm:stop topic
    "health",  # /startupz /readyz /livez /drainz /metrics, last to start, first to stop
    "broker",  # the Celery layer's clean-up of this worker's private queue
)
"""The declared order of the worker's middleware (``order_of`` sorts by it; unknown names last)."""


class WorkerMiddleware:
    """Base class: every hook is a no-op. ``name`` places it in ``MIDDLEWARE_ORDER``."""

    name = "middleware"

    def on_prewarmed(self, runtime: WorkerRuntime) -> None:
        """Prewarm finished (READY or ERROR): the runtime's loop is not running yet."""

    def on_start(self, runtime: WorkerRuntime) -> None:
        """The runtime starts (its loop and heartbeat start right after)."""

    def on_stop(self, runtime: WorkerRuntime) -> None:
        """The runtime stopped its loop; release what ``on_start`` took."""

    def before_claim(self, runtime: WorkerRuntime, message: RunSessionMessage) -> str | None:
        """A reason to refuse this session here (it goes back to the queue), or None to take it."""
        return None

    def after_claim(
        self, runtime: WorkerRuntime, message: RunSessionMessage, timings: Mapping[str, float]
    ) -> None:
        """A session was claimed under a lease; ``timings`` has ``queue_wait`` and ``claim`` (ms)."""

    def on_session_end(
        self, runtime: WorkerRuntime, message: RunSessionMessage, runner: SessionRunner, result: RunResult
    ) -> None:
        """A session left this process (ended, failed, handed back, lost or stalled)."""

    def on_tick(self, runtime: WorkerRuntime) -> None:
        """The heartbeat's turn (every ``heartbeat_s``, on a thread)."""

    def limit_free_slots(self, runtime: WorkerRuntime, free: int) -> int:
        """The free slots to advertise and accept, at most ``free`` (the core's slot count)."""
        return free


def tick_all(middleware: list[WorkerMiddleware], runtime: WorkerRuntime) -> None:
    """Every middleware's ``on_tick``, in order; one that fails is logged and the others still run."""
    for m in middleware:
        try:
            m.on_tick(runtime)
        except Exception:
            log.exception("middleware tick failed", extra={**runtime.fields, "middleware": m.name})


def order_of(middleware: list[WorkerMiddleware]) -> list[WorkerMiddleware]:
    """``middleware`` sorted by ``MIDDLEWARE_ORDER`` (stable; unknown names keep their order, last)."""
    rank = {name: i for i, name in enumerate(MIDDLEWARE_ORDER)}
    return sorted(middleware, key=lambda m: rank.get(m.name, len(rank)))
