"""WorkerRegistry contract: in-memory and Redis registries publish, expire and remove workers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from farm.kernel.contracts import WorkerInfo, WorkerState
from farm.sessions.base import WorkerRegistry
from farm.sessions.registry import MemoryWorkerRegistry, RedisWorkerRegistry


@dataclass
class Harness:
    registry: WorkerRegistry
    wait_past_ttl: Callable[[float], None]


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.unit),
        pytest.param("redis", marks=pytest.mark.integration),
    ]
)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "memory":
        now = [0.0]

        def advance(ttl_s: float) -> None:
            now[0] += ttl_s + 1

        yield Harness(MemoryWorkerRegistry(clock=lambda: now[0]), advance)
    else:
        client: redis.Redis = request.getfixturevalue("redis_client")
        yield Harness(RedisWorkerRegistry(client), lambda ttl_s: time.sleep(ttl_s + 0.05))


def info(worker_id: str, state: WorkerState = "READY") -> WorkerInfo:
    return WorkerInfo(
        worker_id=worker_id,
        hostname="h",
        pid=1,
        queues=["essence"],
        state=state,
        capacity=4,
    )


def test_published_workers_are_listed_with_their_facts(harness: Harness) -> None:
    ready = info("w1").model_copy(update={"prewarm_s": 1.5, "models": ["essence"]})
    harness.registry.publish(ready, ttl_s=30)
    harness.registry.publish(info("w2", state="ERROR"), ttl_s=30)
    listed = harness.registry.list()
    assert [w.worker_id for w in listed] == ["w1", "w2"]
    assert listed[0].prewarm_s == 1.5 and listed[0].free_slots == 4
    assert listed[1].state == "ERROR" and listed[1].free_slots == 0


def test_a_worker_that_stops_heartbeating_disappears(harness: Harness) -> None:
    harness.registry.publish(info("w1"), ttl_s=0.2)
    harness.wait_past_ttl(0.2)
    assert harness.registry.list() == []


def test_removed_workers_are_gone(harness: Harness) -> None:
    harness.registry.publish(info("w1"), ttl_s=30)
    harness.registry.remove("w1")
    assert harness.registry.list() == []
