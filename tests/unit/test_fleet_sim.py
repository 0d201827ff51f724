"""farm sim: the demand policy (the API's own scaling function) never hands a live session back;
the backlog policy does once the queue drains."""

from __future__ import annotations

import pytest

from farm.fleet import scaling, sim

pytestmark = pytest.mark.unit


def test_a_small_day_old_policy_evicts_new_policy_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = scaling.desired_replicas

    def counted(*args: object, **kwargs: object) -> int:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sim, "desired_replicas", counted)
    summary, traces = sim.run(peak=300, seed=1)
    new, old = summary["policies"]["demand"], summary["policies"]["backlog"]
    assert calls, "the simulator must call the API's scaling decision"
    for pool in ("essence", "expression"):
        assert new[pool]["evicted"] == 0 and new[pool]["refused"] == 0
        assert old[pool]["evicted"] > 0
        assert new[pool]["sessions"] == old[pool]["sessions"] > 0
        assert 0 <= new[pool]["idle_pod_hours"] <= new[pool]["pod_hours"]
    assert len(traces["demand"]["essence"]["t"]) == sim.DAY_S // 60


def test_backlog_replicas_is_what_the_list_trigger_asks() -> None:
    assert sim.backlog_replicas(0, list_length=2, min_replicas=1, max_replicas=50) == 1
    assert sim.backlog_replicas(5, list_length=2, min_replicas=1, max_replicas=50) == 3
