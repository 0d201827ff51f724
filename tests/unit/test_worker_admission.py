"""Admission by measured cost (``farm.worker.admission.CostAdmission``): a worker's free capacity
follows the CPU its sessions cost and the pictures they skipped, and it counts the sessions live now,
not the ones live when it last measured. Driven with a fake clock and CPU meter and real PumpStats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from farm.stream.pump import PumpStats
from farm.worker.admission import UNMEASURED, CostAdmission

pytestmark = pytest.mark.unit

CORES = 2.0
TARGET = 0.65  # of 2 cores: 1.3 cores for sessions


@dataclass
class Runner:
    stats: PumpStats = field(default_factory=PumpStats)


@dataclass
class Slots:
    runners: list[Runner] = field(default_factory=list)

    def running(self) -> list[Runner]:
        return list(self.runners)

    @property
    def used(self) -> int:
        return len(self.runners)


@dataclass
class Runtime:
    slots: Slots = field(default_factory=Slots)


class Meter:
    """The clock and the process CPU time the middleware reads."""

    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 10.0

    def run(self, seconds: float, cores: float) -> None:
        self.now += seconds
        self.cpu += seconds * cores


@pytest.fixture
def meter() -> Meter:
    return Meter()


@pytest.fixture
def admission(meter: Meter) -> CostAdmission:
    return CostAdmission(
        cpu_target=TARGET, late_share=0.01, cores=CORES, cpu_time=lambda: meter.cpu, clock=lambda: meter.now
    )


def tick(admission: CostAdmission, runtime: Runtime, meter: Meter, *, cores: float, skipped: int = 0) -> None:
    """Five seconds at ``cores`` of CPU, each live session writing 125 frames, then the heartbeat."""
    meter.run(5.0, cores)
    for runner in runtime.slots.runners:
        runner.stats.frames += 125
        runner.stats.skipped += skipped
    admission.on_tick(cast(Any, runtime))


def measured(admission: CostAdmission, meter: Meter, live: int, cores: float, skipped: int = 0) -> Runtime:
    """A runtime with ``live`` sessions that cost ``cores`` in all, measured over a few ticks."""
    runtime = Runtime(Slots([Runner() for _ in range(live)]))
    for _ in range(6):  # the EWMA settles on the steady cost
        tick(admission, runtime, meter, cores=cores, skipped=skipped)
    return runtime


def test_with_nothing_measured_the_slot_count_decides(admission: CostAdmission) -> None:
    assert admission.admissible(0) == UNMEASURED
    assert admission.admissible(3) == UNMEASURED  # live, but no tick yet
    runtime = Runtime(Slots([Runner()]))
    assert admission.limit_free_slots(cast(Any, runtime), 4) == 4


def test_another_session_is_admitted_while_one_more_of_the_measured_cost_fits_under_the_target(
    admission: CostAdmission, meter: Meter
) -> None:
    runtime = measured(admission, meter, live=2, cores=0.6)  # 0.3 cores each: 4 fit under 1.3
    assert admission.admissible(2) == 2
    assert admission.limit_free_slots(cast(Any, runtime), 8) == 2
    assert admission.limit_free_slots(cast(Any, runtime), 1) == 1  # never more than the free slots
    assert admission.before_claim(cast(Any, runtime), cast(Any, None)) is None
    runtime = measured(admission, meter, live=4, cores=1.2)
    assert admission.admissible(4) == 0
    reason = admission.before_claim(cast(Any, runtime), cast(Any, None))
    assert reason is not None and "0.30 cores per session" in reason and "65% of 2 cores" in reason


def test_a_slot_freed_since_the_last_measurement_is_offered_at_once(
    admission: CostAdmission, meter: Meter
) -> None:
    """The window is a heartbeat long: the session that just ended still weighs in its CPU total. The
    worker used to keep the freed slot shut until its next tick (seen in the e2e load test: a waiting
    room bounced between the worker and the queue for 6 s after a session ended)."""
    measured(admission, meter, live=4, cores=1.2)  # full by cost at 4
    assert admission.admissible(4) == 0
    assert admission.admissible(3) == 1  # one ended: its slot is admissible before any new tick


def test_sessions_admitted_since_the_last_measurement_count_at_once(
    admission: CostAdmission, meter: Meter
) -> None:
    """Between two ticks the worker must not admit past its target on the cost of fewer sessions."""
    measured(admission, meter, live=1, cores=0.3)
    assert admission.admissible(1) == 3
    assert admission.admissible(3) == 1
    assert admission.admissible(4) == 0


def test_a_worker_whose_sessions_skipped_pictures_takes_none_until_it_is_below_that_load(
    admission: CostAdmission, meter: Meter
) -> None:
    runtime = measured(admission, meter, live=3, cores=0.6, skipped=5)  # 4 % of pictures skipped at 3
    assert admission.admissible(3) == 0  # CPU alone would admit 3 more
    reason = admission.before_claim(cast(Any, runtime), cast(Any, None))
    assert (
        reason is not None
        and "at 3 live sessions they skipped 4.0% of their pictures" in reason
        and "limit 1.0%" in reason
    )
    assert admission.admissible(2) == 0  # back to 3 would be the load it fell behind at
    assert admission.admissible(1) == 1
    tick(admission, runtime, meter, cores=0.6)  # a window on time: the CPU rule again
    assert admission.admissible(3) == 3
