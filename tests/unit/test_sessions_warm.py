"""Warm routing decisions: which worker a session goes to, and which routed sessions are stranded."""

from __future__ import annotations

import pytest

from farm.kernel.contracts import WorkerInfo
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.sessions.registry import MemoryWorkerRegistry
from farm.sessions.warm import WarmRouter, stranded

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def worker(wid: str, *, cached: list[str], capacity: int = 2, active: int = 0, **kw: object) -> WorkerInfo:
    fields: dict[str, object] = {
        "worker_id": wid,
        "hostname": wid,
        "pid": 1,
        "queues": ["essence"],
        "state": "READY",
        "capacity": capacity,
        "active_sessions": active,
        "cached_avatars": cached,
        "warm_queue": f"render.w.{wid}",
        **kw,
    }
    return WorkerInfo.model_validate(fields)


def router_over(*infos: WorkerInfo) -> tuple[WarmRouter, MemoryWorkerRegistry, Clock]:
    clock = Clock()
    registry = MemoryWorkerRegistry(clock=clock)
    for info in infos:
        registry.publish(info, ttl_s=60)
    return WarmRouter(registry, cache_s=1.0, clock=clock), registry, clock


def test_a_session_goes_to_the_ready_worker_holding_its_avatar() -> None:
    router, _, _ = router_over(worker("w1", cached=["A"]), worker("w2", cached=["B"]))
    assert router.pick(ModelKind.ESSENCE, "B") == "w2"
    assert router.pick(ModelKind.ESSENCE, "C") is None
    assert router.pick(ModelKind.ESSENCE, None) is None


def test_busy_draining_unadvertised_or_other_model_workers_are_never_picked() -> None:
    router, _, _ = router_over(
        worker("full", cached=["A"], capacity=1, active=1),
        worker("draining", cached=["A"], state="DRAINING"),
        worker("prefork", cached=["A"], warm_queue=None),
        worker("gpu", cached=["A"], queues=["expression"]),
    )
    assert router.pick(ModelKind.ESSENCE, "A") is None


def test_a_burst_within_the_cache_window_does_not_overfill_a_worker() -> None:
    router, registry, clock = router_over(worker("w1", cached=["A"], capacity=2))
    assert [router.pick(ModelKind.ESSENCE, "A") for _ in range(3)] == ["w1", "w1", None]
    clock.now = 0.5  # within the window, but our count says full: it re-reads and sees 2 free again
    assert router.pick(ModelKind.ESSENCE, "A") == "w1"
    registry.publish(worker("w1", cached=["A"], capacity=2, active=2), ttl_s=60)
    clock.now = 0.6
    assert router.pick(ModelKind.ESSENCE, "A") == "w1"  # the registry has not caught up: 1 left
    clock.now = 0.7
    assert router.pick(ModelKind.ESSENCE, "A") is None  # re-read: really full


def test_the_worker_with_most_free_slots_wins_and_hot_avatars_count_as_held() -> None:
    router, _, _ = router_over(
        worker("w1", cached=["A"], capacity=4, active=3),
        worker("w2", cached=[], hot_avatars=["A"], capacity=4),
    )
    assert router.pick(ModelKind.ESSENCE, "A") == "w2"


def session(
    routed_to: str | None, *, updated_at: float, attempts: int = 0, state: SessionState = SessionState.QUEUED
) -> Session:
    return Session(
        id=f"s-{routed_to}-{updated_at}-{attempts}",
        tenant="t",
        model=ModelKind.ESSENCE,
        state=state,
        routed_to=routed_to,
        updated_at=updated_at,
        attempts=attempts,
    )


def test_stranded_sessions_are_never_claimed_routed_ones_whose_worker_is_gone_or_too_slow() -> None:
    gone = session("dead", updated_at=99.0)
    just_routed_to_gone = session("dead", updated_at=99.9)
    waiting_long = session("alive", updated_at=90.0)
    waiting_briefly = session("alive", updated_at=98.0)
    shared = session(None, updated_at=0.0)
    handed_back = session("dead", updated_at=0.0, attempts=1)
    running = session("dead", updated_at=0.0, state=SessionState.STREAMING)
    found = stranded(
        [gone, just_routed_to_gone, waiting_long, waiting_briefly, shared, handed_back, running],
        {"alive"},
        now=100.0,
        max_wait_s=5.0,
    )
    assert found == [gone, waiting_long]
