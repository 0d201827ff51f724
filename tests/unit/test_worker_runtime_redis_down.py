"""The worker runtime treats Redis errors as transient: while Redis is down its heartbeat keeps going
(logging, backing off) and publishes again once Redis is back; a Redis call that hangs delays the
heartbeat but never the liveness tick, so a partition does not get the worker killed as wedged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from farm.kernel.contracts import WorkerInfo
from farm.kernel.errors import BackendUnavailable
from farm.kernel.settings import Settings
from farm.render.base import AvatarSource
from farm.sessions.agents import MemoryAgentStore
from farm.sessions.memory import MemorySessionStore
from farm.sessions.registry import MemoryWorkerRegistry
from farm.worker.runtime import RuntimeParts, WorkerRuntime
from tests.support.helpers import wait_until
from tests.support.stub_worker import StubQueue

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


class FlakyRegistry(MemoryWorkerRegistry):
    """A registry over a Redis that can be down (BackendUnavailable) or hang (until released)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.hang = threading.Event()
        self.release = threading.Event()
        self.attempts = 0

    def publish(self, info: WorkerInfo, ttl_s: float) -> None:
        self.attempts += 1
        if self.hang.is_set():
            self.release.wait(30)
        if self.down.is_set():
            raise BackendUnavailable("redis is unavailable: ConnectionError")
        super().publish(info, ttl_s)


class Maintenance:
    def __init__(self, registry: FlakyRegistry) -> None:
        self.registry = registry
        self.passes = 0

    def __call__(self) -> None:
        self.passes += 1
        if self.registry.down.is_set():
            raise BackendUnavailable("redis is unavailable: ConnectionError")


@pytest.fixture
def registry() -> FlakyRegistry:
    return FlakyRegistry()


@pytest.fixture
def maintenance(registry: FlakyRegistry) -> Maintenance:
    return Maintenance(registry)


@pytest.fixture
def runtime(settings: Settings, registry: FlakyRegistry, maintenance: Maintenance) -> Iterator[WorkerRuntime]:
    parts = RuntimeParts(
        store=MemorySessionStore(),
        queue=StubQueue(),
        registry=registry,
        agents=MemoryAgentStore(),
        pool=None,
        io_factory=lambda session, render: pytest.fail("no session runs here"),
        resolve_avatar=lambda session: AvatarSource(key="A1"),
        maintenance=(maintenance,),
    )
    worker = WorkerRuntime(settings, parts, worker_id="w1", hostname="h", queues=["build"], capacity=1)
    yield worker
    registry.release.set()
    worker.stop()


def test_the_heartbeat_rides_out_redis_being_down_and_publishes_again_when_it_is_back(
    runtime: WorkerRuntime,
    registry: FlakyRegistry,
    maintenance: Maintenance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry.down.set()
    runtime.prewarm()
    runtime.start()
    wait_until(
        lambda: registry.attempts >= 3 and maintenance.passes >= 3, what="heartbeats while Redis is down"
    )
    assert registry.list() == []

    registry.down.clear()
    wait_until(registry.list, deadline_s=15, what="the registry entry to come back")

    assert [w.worker_id for w in registry.list()] == ["w1"]
    assert "maintenance pass skipped: redis unavailable" in caplog.text
    assert "maintenance pass failed" not in caplog.text and "heartbeat step failed" not in caplog.text
    assert runtime.progress_age_s() < 5


def test_a_hanging_redis_call_delays_the_heartbeat_but_not_the_liveness_tick(
    runtime: WorkerRuntime, registry: FlakyRegistry
) -> None:
    runtime.prewarm()
    published = registry.attempts
    registry.hang.set()
    runtime.start()
    wait_until(lambda: registry.attempts > published, what="the heartbeat's publish to hang")
    hung_at = time.monotonic()

    wait_until(
        lambda: runtime.progress_age_s() < 1.0 and time.monotonic() > hung_at + 1.0,
        deadline_s=10,
        what="the loop to tick on",
    )

    assert registry.attempts == published + 1  # the heartbeat is still waiting on Redis
    assert runtime.progress_age_s() < 1.0
