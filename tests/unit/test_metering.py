"""Credits and metering over the Ledger seam: exact per-minute charges, fencing, plans, monthly reset.

The same tests run against Redis (the Lua script) in tests/integration/test_metering_redis.py, which
overrides the ``world`` fixture; here the ledger and session store are in memory.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.errors import InsufficientBalance
from farm.sessions.base import Lease, SessionStore
from farm.sessions.memory import MemorySessionStore
from farm.tenancy.metering import (
    Ledger,
    MemoryLedger,
    Metering,
    MinuteOutcome,
    Outcome,
    meter_minute,
)
from farm.tenancy.plans import AGENT_BUILD_CREDITS

pytestmark = pytest.mark.unit

JAN_15 = calendar.timegm((2026, 1, 15, 12, 0, 0))
FEB_1 = calendar.timegm((2026, 2, 1, 0, 0, 1))


@dataclass
class World:
    """A ledger and a session store that share fencing (claims raise the token the ledger checks)."""

    ledger: Ledger
    store: SessionStore
    now: list[float]

    @property
    def metering(self) -> Metering:
        return Metering(self.ledger, clock=lambda: self.now[0])

    def session(self, tenant: str = "t", model: ModelKind = ModelKind.ESSENCE, sid: str = "s1") -> Session:
        return self.store.create(Session(id=sid, tenant=tenant, model=model), max_live=100)[0]

    def claim(self, session_id: str, worker: str) -> Lease:
        lease = self.store.claim(session_id, worker, ttl_s=30)
        assert lease is not None
        if isinstance(self.ledger, MemoryLedger):
            self.ledger.claimed(session_id, lease.token)
        return lease

    def stream(self, session_id: str) -> None:
        self.store.transition(session_id, SessionState.STARTING)
        self.store.transition(session_id, SessionState.STREAMING)

    def crash_and_requeue(self, lease: Lease) -> None:
        """The holder vanishes (its lease is gone) and the reaper re-queues the session."""
        self.store.release(lease)
        self.store.transition(lease.session_id, SessionState.QUEUED, reason="lease expired: re-queued")


@pytest.fixture
def world() -> Iterator[World]:
    yield World(MemoryLedger(), MemorySessionStore(), [float(JAN_15)])


def test_each_started_minute_is_charged_once_at_the_models_rate(world: World) -> None:
    world.ledger.set_plan("t", "free")
    metering = world.metering
    session = world.session(model=ModelKind.EXPRESSION)
    lease = world.claim(session.id, "w1")
    assert meter_minute(metering, session, 0, lease.token) is MinuteOutcome.CONTINUE
    assert meter_minute(metering, session, 0, lease.token) is MinuteOutcome.CONTINUE  # a repeat is free
    assert meter_minute(metering, session, 1, lease.token) is MinuteOutcome.CONTINUE
    usage = metering.usage("t")
    assert (usage.balance, usage.counters["credits:expression"], usage.counters["units:expression"]) == (
        191,
        8,
        2,
    )
    assert usage.minutes_left(ModelKind.ESSENCE) == 95
    assert usage.minutes_left(ModelKind.EXPRESSION) == 47


def test_a_crashed_workers_minutes_are_not_charged_again_and_the_stale_holder_cannot_charge(
    world: World,
) -> None:
    world.ledger.set_plan("t", "creator")
    metering = world.metering
    session = world.session()
    first = world.claim(session.id, "w1")
    world.stream(session.id)
    for minute in (0, 1, 2):
        assert meter_minute(metering, session, minute, first.token) is MinuteOutcome.CONTINUE
    world.crash_and_requeue(first)  # w1 vanished mid-minute 2
    second = world.claim(session.id, "w2")
    for minute in (0, 1, 2, 3):  # the successor starts its minute count again
        assert meter_minute(metering, session, minute, second.token) is MinuteOutcome.CONTINUE
    assert meter_minute(metering, session, 4, first.token) is MinuteOutcome.LEASE_LOST  # w1 comes back
    usage = metering.usage("t")
    assert usage.counters["units:essence"] == 4  # minutes 0-3, each once
    assert usage.balance == 1_800 - 4 * 2


def test_out_of_credits_ends_at_the_minute_boundary_and_new_work_is_refused(world: World) -> None:
    world.ledger.set_plan("t", "free")  # 199 credits: 99 essence minutes
    metering = world.metering
    session = world.session()
    lease = world.claim(session.id, "w1")
    outcomes = [meter_minute(metering, session, m, lease.token) for m in range(101)]
    assert outcomes.count(MinuteOutcome.CONTINUE) == 99
    assert outcomes[99] is MinuteOutcome.OUT_OF_CREDITS
    assert metering.usage("t").balance == 1
    with pytest.raises(InsufficientBalance) as refused:
        metering.require_credits("t", 2, "an essence session")
    assert refused.value.http_status == 402 and refused.value.code == "INSUFFICIENT_BALANCE"


def test_top_ups_are_spent_after_plan_credits_and_survive_the_month(world: World) -> None:
    world.ledger.set_plan("t", "free")
    world.ledger.add_topup("t", 10)
    metering = world.metering
    session = world.session()
    lease = world.claim(session.id, "w1")
    for minute in range(102):  # 204 credits: 199 from the plan, 5 from the top-up
        assert meter_minute(metering, session, minute, lease.token) is MinuteOutcome.CONTINUE
    usage = metering.usage("t")
    assert (usage.plan_credits_left, usage.topup_credits, usage.balance) == (0, 5, 5)
    world.now[0] = float(FEB_1)  # monthly reset: plan credits come back, the top-up stays
    february = metering.usage("t")
    assert (february.period, february.plan_credits_left, february.balance) == ("2026-02", 199, 204)
    assert february.counters == {}
    assert usage.resets_at == FEB_1 - 1


def test_unlimited_plans_are_metered_but_never_refused(world: World) -> None:
    metering = world.metering  # no plan assigned: custom (unlimited)
    session = world.session()
    lease = world.claim(session.id, "w1")
    for minute in range(100):
        assert meter_minute(metering, session, minute, lease.token) is MinuteOutcome.CONTINUE
    usage = metering.usage("t")
    assert (usage.plan.name, usage.balance, usage.counters["units:essence"]) == ("custom", None, 100)
    assert usage.minutes_left(ModelKind.ESSENCE) is None
    metering.require_credits("t", 10**9, "anything")


def test_a_video_is_prepaid_by_started_minute_and_its_worker_minutes_are_then_free(world: World) -> None:
    world.ledger.set_plan("t", "free")
    metering = world.metering
    session = world.session()
    assert metering.prepay_video(session, 61.0).credits == 4  # 2 started minutes
    lease = world.claim(session.id, "w1")
    assert meter_minute(metering, session, 0, lease.token) is MinuteOutcome.CONTINUE
    assert metering.usage("t").balance == 195
    big = world.session(sid="s2")
    with pytest.raises(InsufficientBalance, match="98-minute video needs 196"):
        metering.prepay_video(big, 98 * 60.0)
    assert metering.usage("t").balance == 195  # nothing moved


def test_one_time_charges_are_idempotent_per_item(world: World) -> None:
    world.ledger.set_plan("t", "creator")
    metering = world.metering
    first = metering.charge_once("t", "agent_build:A1", "agent_build", AGENT_BUILD_CREDITS)
    again = metering.charge_once("t", "agent_build:A1", "agent_build", AGENT_BUILD_CREDITS)
    assert (first.outcome, again.outcome) == (Outcome.CHARGED, Outcome.ALREADY)
    assert metering.usage("t").balance == 1_800 - 250
    world.ledger.set_plan("u", "free")
    with pytest.raises(InsufficientBalance):
        metering.charge_once("u", "agent_build:A2", "agent_build", AGENT_BUILD_CREDITS)


def test_plans_are_assigned_per_tenant_and_unknown_ones_refused(world: World) -> None:
    from farm.kernel.errors import ValidationError

    world.ledger.set_plan("t", "pro")
    assert world.metering.plan_of("t").concurrent_sessions == 10
    assert world.metering.plan_of("other").name == "custom"
    with pytest.raises(ValidationError, match="plans: free, creator"):
        world.ledger.set_plan("t", "platinum")
    assert "t" in world.ledger.tenants()
