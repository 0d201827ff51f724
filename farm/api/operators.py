"""The operators' view of the farm: workers per pool, queue depth, and TTFF / fps histograms.

Counts come from the worker registry and the shared queues' lengths; the histograms from the
per-session figures the workers record when a session ends (``Session.timings_ms``: ``first_frame``
is claim → first frame out, the same value a worker observes into ``farm_session_ttff_seconds``;
``frames`` over the streaming time is the delivered frame rate) of the farm's latest finished
sessions (``SessionStore.recent``). Only tenants named in ``settings.admin_tenants`` may read it.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel

from farm.kernel.contracts import WorkerInfo
from farm.kernel.domain import Session
from farm.kernel.errors import AdminOnly
from farm.kernel.names import RENDER_QUEUES
from farm.kernel.settings import Settings
from farm.sessions.base import SessionStore, WorkerRegistry
from farm.tenancy.base import ApiKey

TTFF_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
"""Upper bounds, as the workers' ``farm_session_ttff_seconds`` histogram."""
FPS_BUCKETS = (5.0, 10.0, 15.0, 20.0, 22.0, 23.0, 24.0, 24.5, 25.0, 25.5, 30.0)
SAMPLED_SESSIONS = 500


class Histogram(BaseModel):
    """Counts per bucket: ``counts[i]`` values ≤ ``bounds[i]`` (and > the bound before); the last
    count is everything above the last bound."""

    bounds: list[float]
    counts: list[int]
    samples: int
    p50: float | None
    p95: float | None


class PoolWorker(BaseModel):
    worker_id: str
    hostname: str
    state: str
    capacity: int
    active_sessions: int
    backend: str | None
    heartbeat_at: float


class PoolView(BaseModel):
    pool: str
    workers: list[PoolWorker]
    ready: int
    draining: int
    starting: int
    errored: int
    capacity: int  # slots of READY workers
    active_sessions: int
    queue_depth: int  # messages waiting on the pool's shared queue


class OperatorOverview(BaseModel):
    pools: list[PoolView]
    ttff_s: dict[str, Histogram]
    fps: dict[str, Histogram]
    sessions_sampled: int
    generated_at: float


def require_admin(settings: Settings, key: ApiKey) -> None:
    if key.tenant not in settings.admin_tenants:
        raise AdminOnly("the operator views need a key of an admin tenant (FARM_ADMIN_TENANTS)")


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))], 3)


def histogram(values: Sequence[float], bounds: Sequence[float]) -> Histogram:
    counts = [0] * (len(bounds) + 1)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
    return Histogram(
        bounds=list(bounds),
        counts=counts,
        samples=len(values),
        p50=_percentile(values, 50),
        p95=_percentile(values, 95),
    )


def _ttff_s(session: Session) -> float | None:
    first = session.timings_ms.get("first_frame")
    return first / 1000.0 if first is not None else None


def _fps(session: Session) -> float | None:
    timings = session.timings_ms
    frames, first, total = timings.get("frames"), timings.get("first_frame"), timings.get("total")
    if not frames or first is None or total is None or total <= first:
        return None
    return frames / ((total - first) / 1000.0)


def _pool(pool: str, workers: list[WorkerInfo], queue_depth: int) -> PoolView:
    mine = [w for w in workers if pool in w.queues]
    return PoolView(
        pool=pool,
        workers=[PoolWorker.model_validate(w, from_attributes=True) for w in mine],
        ready=sum(w.state == "READY" for w in mine),
        draining=sum(w.state == "DRAINING" for w in mine),
        starting=sum(w.state == "STARTING" for w in mine),
        errored=sum(w.state == "ERROR" for w in mine),
        capacity=sum(w.capacity for w in mine if w.state == "READY"),
        active_sessions=sum(w.active_sessions for w in mine),
        queue_depth=queue_depth,
    )


def overview(
    settings: Settings,
    key: ApiKey,
    store: SessionStore,
    registry: WorkerRegistry,
    queue_depth: Callable[[str], int],
) -> OperatorOverview:
    """The whole farm for an admin key (ADMIN_ONLY for any other)."""
    require_admin(settings, key)
    workers = registry.list()
    recent = store.recent(SAMPLED_SESSIONS)
    ttff: dict[str, Histogram] = {}
    fps: dict[str, Histogram] = {}
    for pool in RENDER_QUEUES:
        sessions = [s for s in recent if s.model.value == pool]
        ttff[pool] = histogram([v for v in map(_ttff_s, sessions) if v is not None], TTFF_BUCKETS_S)
        fps[pool] = histogram([v for v in map(_fps, sessions) if v is not None], FPS_BUCKETS)
    return OperatorOverview(
        pools=[_pool(pool, workers, queue_depth(pool)) for pool in RENDER_QUEUES],
        ttff_s=ttff,
        fps=fps,
        sessions_sampled=len(recent),
        generated_at=time.time(),
    )
