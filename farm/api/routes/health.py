"""Health, readiness, the fleet view and Prometheus metrics.

``/healthz`` says the process is up; ``/readyz`` says Redis answers (503 otherwise); ``/v1/fleet``
groups the worker registry by queue; ``/scaling/{pool}`` is the autoscaling signal KEDA's
``metrics-api`` scaler polls (``farm.fleet.scaling``; counts only, no tenant data, no auth, like
``/metrics``: keep both off the public ingress); ``/metrics`` is the process's Prometheus registry.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from farm.api.deps import Caller, Services
from farm.api.errors import error_response
from farm.api.schemas import ERROR_RESPONSES
from farm.fleet.scaling import pool_demand, scaling_value
from farm.kernel.contracts import WorkerInfo
from farm.kernel.errors import BackendUnavailable, NotFound
from farm.kernel.names import RENDER_QUEUES

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class FleetWorker(BaseModel):
    worker_id: str
    hostname: str
    state: str
    capacity: int
    active_sessions: int
    free_slots: int
    prewarm_s: float | None
    models: list[str]
    backend: str | None
    hot_avatars: list[str]
    cached_avatars: list[str] = []
    warm_queue: str | None = None
    ready_at: float | None = None
    heartbeat_at: float
    error: str | None

    @classmethod
    def of(cls, info: WorkerInfo) -> FleetWorker:
        """The public view of a registry entry: the same field names (``free_slots`` is derived)."""
        return cls.model_validate(info, from_attributes=True)


class QueueFleet(BaseModel):
    workers: list[FleetWorker]
    ready: int
    capacity: int
    free_slots: int


class Fleet(BaseModel):
    queues: dict[str, QueueFleet]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process serves requests."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: ERROR_RESPONSES[503]})
def readyz(farm: Services) -> Response:
    """Readiness: Redis answers PING."""
    if not farm.ping():
        return error_response(BackendUnavailable("redis is not reachable"))
    return Response(Health(status="ready").model_dump_json(), media_type="application/json")


def fleet_view(workers: list[WorkerInfo], visible_agents: set[str] | None = None) -> Fleet:
    """Group workers by each queue they consume; render queues are always listed.

    With ``visible_agents``, the avatar keys a worker holds (hot, cached) are cut down to those
    agents: a tenant never sees which other tenants' agents are warm where.
    """
    if visible_agents is not None:
        workers = [
            w.model_copy(
                update={
                    "hot_avatars": [a for a in w.hot_avatars if a in visible_agents],
                    "cached_avatars": [a for a in w.cached_avatars if a in visible_agents],
                }
            )
            for w in workers
        ]
    by_queue: dict[str, list[WorkerInfo]] = {q: [] for q in RENDER_QUEUES}
    for info in workers:
        for queue in info.queues:
            by_queue.setdefault(queue, []).append(info)
    return Fleet(
        queues={
            queue: QueueFleet(
                workers=[FleetWorker.of(w) for w in infos],
                ready=sum(1 for w in infos if w.state == "READY"),
                capacity=sum(w.capacity for w in infos if w.state == "READY"),
                free_slots=sum(w.free_slots for w in infos),
            )
            for queue, infos in by_queue.items()
        }
    )


@router.get("/v1/fleet", response_model=Fleet, responses=ERROR_RESPONSES)
def fleet(farm: Services, key: Caller) -> Fleet:
    """Workers by queue: state, capacity, free slots, prewarm duration, models, backend; of the
    avatars each holds, only the caller's own agents."""
    mine = {agent.id for agent in farm.agents.list_for_tenant(key.tenant)}
    return fleet_view(farm.registry.list(), visible_agents=mine)


class ScalingSignal(BaseModel):
    pool: str
    queued: int
    live: int
    capacity: int
    warm_spares: int
    value: int
    """KEDA ``valueLocation``: with ``targetValue`` = ``capacity`` it asks for ceil(value / capacity) pods."""


@router.get("/scaling/{pool}", response_model=ScalingSignal, responses={404: ERROR_RESPONSES[404]})
def scaling(pool: str, farm: Services) -> Response:
    """Queued + live sessions of a render pool plus its warm spares' capacity, for KEDA."""
    settings = farm.settings
    if pool not in RENDER_QUEUES:
        return error_response(NotFound(f"no render pool {pool!r}; pools: {', '.join(RENDER_QUEUES)}"))
    capacity = settings.pod_capacity.get(pool, settings.worker_capacity)
    spares = settings.warm_spares.get(pool, 0)
    demand = pool_demand(pool, farm.queue_depth(pool), farm.registry.list())
    signal = ScalingSignal(
        pool=pool,
        queued=demand.queued,
        live=demand.live,
        capacity=capacity,
        warm_spares=spares,
        value=scaling_value(demand, capacity=capacity, warm_spares=spares),
    )
    return Response(signal.model_dump_json(), media_type="application/json")
