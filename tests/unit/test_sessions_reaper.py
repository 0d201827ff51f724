"""The reaper re-queues sessions whose worker died, fails them after max_attempts, one pass at a time."""

from __future__ import annotations

import uuid

import pytest
import redis

from farm.contracts import RunSessionMessage
from farm.domain import ModelKind, Session, SessionState
from farm.sessions.memory import MemorySessionStore
from farm.sessions.reaper import LocalReaperLock, Reaper, RedisReaperLock


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ListQueue:
    def __init__(self) -> None:
        self.messages: list[RunSessionMessage] = []

    def submit(self, message: RunSessionMessage) -> None:
        self.messages.append(message)


def streaming_session(store: MemorySessionStore, model: ModelKind = ModelKind.ESSENCE) -> str:
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=model))
    lease = store.claim(session.id, "w1", ttl_s=5)
    assert lease is not None
    store.transition(session.id, SessionState.STARTING, lease=lease)
    store.transition(session.id, SessionState.STREAMING, lease=lease)
    return session.id


@pytest.mark.unit
def test_a_dead_workers_session_is_requeued_on_its_model_queue() -> None:
    clock = Clock()
    store, queue = MemorySessionStore(clock=clock), ListQueue()
    sid = streaming_session(store, ModelKind.EXPRESSION)
    reaper = Reaper(store, queue, LocalReaperLock(), max_attempts=3)
    assert reaper.run_once().requeued == []
    clock.now += 10
    report = reaper.run_once()
    assert report.requeued == [sid]
    assert store.get(sid).state is SessionState.QUEUED
    assert [(m.session_id, m.model) for m in queue.messages] == [(sid, ModelKind.EXPRESSION)]
    assert store.orphaned() == []


@pytest.mark.unit
def test_a_session_that_keeps_losing_workers_fails_with_lease_expired() -> None:
    clock = Clock()
    store, queue = MemorySessionStore(clock=clock), ListQueue()
    sid = streaming_session(store)
    reaper = Reaper(store, queue, LocalReaperLock(), max_attempts=2)
    clock.now += 10
    reaper.run_once()
    assert store.claim(sid, "w2", ttl_s=5) is not None  # second attempt, whose worker dies too
    clock.now += 10
    report = reaper.run_once()
    assert report.failed == [sid]
    final = store.get(sid)
    assert final.state is SessionState.FAILED
    assert final.failure is not None and final.failure["code"] == "LEASE_EXPIRED"
    assert len(queue.messages) == 1


@pytest.mark.unit
def test_an_ending_session_without_a_worker_fails() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE))
    lease = store.claim(session.id, "w1", ttl_s=5)
    assert lease is not None
    for state in (SessionState.STARTING, SessionState.STREAMING, SessionState.ENDING):
        store.transition(session.id, state, lease=lease)
    clock.now += 10
    assert Reaper(store, ListQueue(), LocalReaperLock(), max_attempts=3).run_once().failed == [session.id]


@pytest.mark.integration
def test_only_one_reaper_pass_runs_per_interval(redis_client: redis.Redis) -> None:
    first = RedisReaperLock(redis_client, "w1", ttl_s=30)
    second = RedisReaperLock(redis_client, "w2", ttl_s=30)
    assert first.acquire()
    assert not second.acquire()
    store = MemorySessionStore()
    assert not Reaper(store, ListQueue(), second, max_attempts=3).run_once().ran
