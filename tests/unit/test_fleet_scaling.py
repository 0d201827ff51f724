"""The autoscaling signal: demand = queued + live per pool, plus warm spares, against per-pod capacity."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.fleet.scaling import PoolDemand, desired_replicas, pool_demand, scaling_value
from farm.kernel.contracts import WorkerInfo
from tests.unit.api_support import ApiHarness

pytestmark = pytest.mark.unit


def _worker(worker_id: str, queue: str, active: int, state: str = "READY") -> WorkerInfo:
    return WorkerInfo(
        worker_id=worker_id,
        hostname="h",
        pid=1,
        queues=[queue],
        state=state,  # type: ignore[arg-type]
        capacity=4,
        active_sessions=active,
    )


def test_live_sessions_keep_their_pods_when_the_backlog_is_empty() -> None:
    # The backlog-only trigger saw 0 here and scaled 10 busy pods away.
    demand = PoolDemand("essence", queued=0, live=40)
    assert desired_replicas(demand, capacity=4, warm_spares=0, max_replicas=100) == 10
    assert desired_replicas(demand, capacity=4, warm_spares=2, max_replicas=100) == 12


def test_queued_sessions_round_up_and_the_hpa_bounds_apply() -> None:
    demand = PoolDemand("expression", queued=3, live=14)
    assert scaling_value(demand, capacity=8, warm_spares=1) == 25
    assert desired_replicas(demand, capacity=8, warm_spares=1, max_replicas=100) == 4
    assert desired_replicas(demand, capacity=8, warm_spares=1, max_replicas=3) == 3
    idle = PoolDemand("expression", queued=0, live=0)
    assert desired_replicas(idle, capacity=8, warm_spares=0, min_replicas=1, max_replicas=3) == 1


def test_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        scaling_value(PoolDemand("essence", 0, 0), capacity=0, warm_spares=1)


def test_pool_demand_counts_live_sessions_of_the_pool_only() -> None:
    workers = [
        _worker("e1", "essence", 3),
        _worker("e2", "essence", 1, "DRAINING"),
        _worker("x", "expression", 5),
    ]
    assert pool_demand("essence", 2, workers) == PoolDemand("essence", queued=2, live=4)


def test_the_scaling_endpoint_serves_the_signal_keda_reads(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path, warm_spares={"essence": 2}, pod_capacity={"essence": 4})
    api.client.app.state.farm.queue_depth = lambda queue: {"essence": 5}.get(queue, 0)  # type: ignore[attr-defined]
    api.registry.publish(_worker("e1", "essence", 4), 30)
    body = api.client.get("/scaling/essence").json()
    assert body == {"pool": "essence", "queued": 5, "live": 4, "capacity": 4, "warm_spares": 2, "value": 17}
    missing = api.client.get("/scaling/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
