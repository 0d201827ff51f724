"""RedisDynamicsBus against a real Redis-compatible server: acks, malformed messages, resubscribe.

Each bus here is what one worker process runs (a subscriber thread plus its LocalSessions); the
two-real-processes case is in test_dynamics_workers.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
import redis

from farm.dynamics.base import DynamicsAck, broadcast
from farm.dynamics.redis_bus import RedisDynamicsBus
from farm.dynamics.router import LocalSessions
from farm.kernel import names
from farm.kernel.contracts import DynamicsMessage
from tests.support.helpers import wait_until

pytestmark = pytest.mark.integration

GESTURES = ("mini_wave_hello", "smile", "talk_head_nod_subtle", "head_tilt")


class Worker:
    """One simulated worker process: a subscribed bus routing to its local sessions."""

    def __init__(self, url: str, worker_id: str, sessions: list[tuple[str, str, str]]) -> None:
        self.played: list[tuple[str, str]] = []
        self.local = LocalSessions(worker_id)
        for session_id, tenant, agent_id in sessions:
            self.local.register(session_id, tenant, agent_id, GESTURES, self._deliver(session_id))
        self.bus = RedisDynamicsBus(url, worker_id=worker_id)
        self.bus.start(self.local.handle)
        assert self.bus.wait_subscribed(10)

    def _deliver(self, session_id: str) -> Callable[[str], None]:
        return lambda action: self.played.append((session_id, action))


@pytest.fixture
def workers(redis_url: str) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(worker_id: str, *sessions: tuple[str, str, str]) -> Worker:
        worker = Worker(redis_url, worker_id, list(sessions))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.bus.close()


@pytest.fixture
def publisher(redis_url: str) -> Iterator[RedisDynamicsBus]:
    bus = RedisDynamicsBus(redis_url)
    yield bus
    bus.close()


def test_a_broadcast_is_acked_by_every_worker_with_its_accepting_sessions(
    workers: Callable[..., Worker], publisher: RedisDynamicsBus
) -> None:
    w1 = workers("w1", ("s1", "t", "A1"), ("s2", "t", "A2"))
    w2 = workers("w2", ("s3", "t", "A1"))
    summary = broadcast(publisher, DynamicsMessage(tenant="t", action="smile", agent_id="A1"), wait_s=2.0)
    assert (summary.workers_replied, summary.sessions_accepted) == (summary.workers_reached, 2)
    assert {a.worker_id for a in summary.acks} >= {"w1", "w2"}
    assert (w1.played, w2.played) == ([("s1", "smile")], [("s3", "smile")])


def test_malformed_topic_messages_are_counted_and_ignored(
    workers: Callable[..., Worker], redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    worker = workers("w1", ("s1", "t", "A1"))
    future = DynamicsMessage(tenant="t", action="smile", agent_id="A1").model_copy(
        update={"schema_version": 99}
    )
    caplog.set_level(logging.WARNING, logger="farm.dynamics.redis_bus")
    for raw in ("not json", '{"action": 1}', "[]", future.model_dump_json()):
        redis_client.publish(names.DYNAMICS_TOPIC, raw)
    redis_client.publish(
        names.DYNAMICS_TOPIC, DynamicsMessage(tenant="t", action="head_tilt", agent_id="A1").model_dump_json()
    )
    wait_until(lambda: worker.bus.stats.routed == 1)
    assert worker.bus.stats.malformed == 4
    assert worker.played == [("s1", "head_tilt")]
    assert sum("malformed dynamics message" in r.getMessage() for r in caplog.records) == 4
    assert not any("not json" in r.getMessage() for r in caplog.records)  # no user content in logs


def test_a_killed_subscription_is_logged_and_resubscribed(
    workers: Callable[..., Worker],
    publisher: RedisDynamicsBus,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="farm.dynamics.redis_bus")
    worker = workers("w-kill", ("s1", "t", "A1"))
    ids = [c["id"] for c in redis_client.client_list() if c.get("name") == "farm-dynamics-w-kill"]
    assert len(ids) == 1
    redis_client.execute_command("CLIENT", "KILL", "ID", ids[0])
    wait_until(lambda: worker.bus.stats.subscriptions == 2)
    assert worker.bus.stats.connection_losses == 1
    messages = [r.getMessage() for r in caplog.records]
    assert "dynamics subscription lost; resubscribing" in messages
    assert "dynamics subscription re-established" in messages
    summary = broadcast(publisher, DynamicsMessage(tenant="t", action="smile", agent_id="A1"), wait_s=2.0)
    assert summary.sessions_accepted == 1
    assert worker.played == [("s1", "smile")]


def test_the_subscriber_outlives_a_message_its_handler_chokes_on(
    redis_url: str, publisher: RedisDynamicsBus
) -> None:
    calls: list[str] = []

    def handler(message: DynamicsMessage) -> DynamicsAck:
        calls.append(message.action)
        if message.action == "boom":
            raise RuntimeError("handler bug")
        return LocalSessions("w").handle(message)

    bus = RedisDynamicsBus(redis_url, worker_id="w-handler")
    bus.start(handler)
    try:
        assert bus.wait_subscribed(10)
        publisher.publish(DynamicsMessage(tenant="t", action="boom", agent_id="A1"))
        publisher.publish(DynamicsMessage(tenant="t", action="smile", agent_id="A1"))
        wait_until(lambda: bus.stats.routed == 1)
        assert bus.stats.handler_errors == 1 and calls == ["boom", "smile"]
    finally:
        bus.close()
