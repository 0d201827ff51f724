"""The autoscaling signal: demand (queued + live sessions) per pool against per-pod capacity.

KEDA's ``metrics-api`` scaler polls ``GET /scaling/{pool}`` on the API (``farm.api.routes.health``)
and, with ``metricType: AverageValue`` and ``targetValue`` = the pool's per-pod capacity, asks the
HPA for ``ceil(value / capacity)`` pods. The value served is ``scaling_value`` below, so the pod
count KEDA computes equals ``desired_replicas``: enough pods for every queued and live session plus
``warm_spares`` pods with free slots, so that a live session never counts as "no demand" and a
drained backlog never scales live pods away (the backlog-only ``LLEN`` trigger did,
kedacore/keda#6719). ``farm sim`` calls these same two functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from farm.kernel.contracts import WorkerInfo


@dataclass(frozen=True)
class PoolDemand:
    """What one pool (a render queue) must serve right now."""

    pool: str
    queued: int
    """Sessions waiting on the pool's shared queue (its Redis list)."""
    live: int
    """Sessions running on the pool's workers (``WorkerInfo.active_sessions``)."""

    @property
    def sessions(self) -> int:
        return self.queued + self.live


def pool_demand(pool: str, queued: int, workers: list[WorkerInfo]) -> PoolDemand:
    """Demand of ``pool`` from its queue depth and the worker registry (any state counts as live)."""
    live = sum(w.active_sessions for w in workers if pool in w.queues)
    return PoolDemand(pool=pool, queued=max(0, queued), live=live)


def scaling_value(demand: PoolDemand, *, capacity: int, warm_spares: int) -> int:
    """The metric KEDA averages over pods: sessions plus the spares' capacity."""
    if capacity < 1:
        raise ValueError(f"per-pod capacity must be >= 1, got {capacity}")
    return demand.sessions + max(0, warm_spares) * capacity


def desired_replicas(
    demand: PoolDemand, *, capacity: int, warm_spares: int, min_replicas: int = 0, max_replicas: int
) -> int:
    """Pods the pool should run: ``ceil(scaling_value / capacity)`` clamped like the HPA clamps it."""
    wanted = math.ceil(scaling_value(demand, capacity=capacity, warm_spares=warm_spares) / capacity)
    return max(min_replicas, min(max_replicas, wanted))
