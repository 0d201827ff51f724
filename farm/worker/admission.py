"""CostAdmission: a worker's free capacity follows its measured cost, not only its slot count.

Every heartbeat tick it samples the CPU this process used since the last tick (render, encode, the
LiveKit FFI: everything the process does) and the share of pictures its live sessions had to skip
to keep their voices on the audio clock. The worker then admits a new session only when

* one more session of the measured average cost fits under ``cpu_target`` of the cores this process
  may use (its CPU affinity, or its cgroup's CPU quota in a container, whichever is smaller), and
* its sessions skipped at most ``late_share`` of their pictures in the last window; a worker that fell
  behind at N live sessions takes new ones only up to N - 1.

The rule counts the sessions live now against the cost per session measured at the last tick: the
window is a heartbeat long (seconds), and a session that ended since, or one admitted since, must
count at once. (When the rule read the window's total CPU instead, a worker kept a slot that had just
been freed shut until its next tick, and could admit past its target between two ticks.)

Contention from other processes on the same machine is not guessed from machine-wide load: it shows
where it matters, in the late share of this worker's own sessions.

With no live session there is no measurement and the slot count decides (the first session is
always admitted on a READY worker). What it advertises in the registry is what it accepts, so the
API's warm router sends a session elsewhere, or the shared queue keeps it, instead of overloading a
worker; ``before_claim`` refuses a delivery that arrives after the picture changed.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from farm.kernel.contracts import RunSessionMessage
from farm.kernel.settings import Settings
from farm.worker.middleware import WorkerMiddleware

if TYPE_CHECKING:
    from farm.worker.runtime import WorkerRuntime

SAMPLE_EWMA = 0.5  # weight of the newest CPU sample
UNMEASURED = 1 << 20  # what ``admissible`` answers before there is a measurement


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> float:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 quota (``cpu.max``)."""
    try:
        cores = float(max(1, len(os.sched_getaffinity(0))))
    except AttributeError:  # not Linux
        cores = float(os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(0.1, int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return cores


@dataclass
class CostSample:
    """What admission last measured."""

    cores_used: float = 0.0  # this process, EWMA of CPU seconds per second
    late_share: float = 0.0  # pictures skipped / frames written by live sessions, last window
    sessions: int = 0
    at: float = 0.0


class CostAdmission(WorkerMiddleware):
    name = "admission"

    def __init__(
        self,
        *,
        cpu_target: float,
        late_share: float,
        cores: float | None = None,
        cpu_time: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cpu_target = cpu_target
        self.max_late_share = late_share
        self.cores = cores if cores is not None else usable_cores()
        self._cpu_time = cpu_time
        self._clock = clock
        self._last: tuple[float, float] | None = None  # (clock, cpu time)
        self._frames: dict[int, tuple[int, int]] = {}  # id(runner) -> (frames, skipped) at last tick
        self._lock = threading.Lock()
        self.sample = CostSample()

    @classmethod
    def from_settings(cls, settings: Settings) -> CostAdmission:
        return cls(cpu_target=settings.worker_cpu_target, late_share=settings.worker_late_share)

    # ------------------------------------------------------------------ hooks
    def on_tick(self, runtime: WorkerRuntime) -> None:
        now, cpu = self._clock(), self._cpu_time()
        runners = runtime.slots.running()
        frames = skipped = 0
        seen: dict[int, tuple[int, int]] = {}
        for runner in runners:
            stats = runner.stats
            before = self._frames.get(id(runner), (0, 0))
            frames += stats.frames - before[0]
            skipped += stats.skipped + stats.resyncs - before[1]
            seen[id(runner)] = (stats.frames, stats.skipped + stats.resyncs)
        with self._lock:
            self._frames = seen
            last, self._last = self._last, (now, cpu)
            if last is None or now <= last[0]:
                return
            used = (cpu - last[1]) / (now - last[0])
            previous = self.sample.cores_used if self.sample.at else used
            self.sample = CostSample(
                cores_used=previous + SAMPLE_EWMA * (used - previous),
                late_share=skipped / frames if frames > 0 else 0.0,
                sessions=len(runners),
                at=now,
            )

    def limit_free_slots(self, runtime: WorkerRuntime, free: int) -> int:
        return min(free, self.admissible(runtime.slots.used))

    def before_claim(self, runtime: WorkerRuntime, message: RunSessionMessage) -> str | None:
        live = runtime.slots.used
        return self.refusal(live) if self.admissible(live) <= 0 else None

    # ------------------------------------------------------------------ the rule
    def admissible(self, live: int) -> int:
        """How many more sessions fit beside ``live`` ones, by the last measurement (a large number
        when nothing is measured)."""
        with self._lock:
            sample = self.sample
        if live <= 0 or sample.sessions <= 0 or sample.cores_used <= 0:
            return UNMEASURED  # the slot count decides
        if sample.late_share > self.max_late_share:
            return max(0, sample.sessions - 1 - live)
        per_session = sample.cores_used / sample.sessions
        return max(0, math.floor(self.cores * self.cpu_target / per_session + 1e-9) - live)

    def refusal(self, live: int) -> str:
        """Why ``admissible(live)`` is 0, in words an operator can act on (it goes to the logs)."""
        with self._lock:
            sample = self.sample
        if sample.late_share > self.max_late_share:
            return (
                f"measured cost: at {sample.sessions} live sessions they skipped {sample.late_share:.1%} "
                f"of their pictures (limit {self.max_late_share:.1%}); {live} live now"
            )
        return (
            f"measured cost: {sample.cores_used / max(1, sample.sessions):.2f} cores per session; with "
            f"{live} live, another does not fit under {self.cpu_target:.0%} of {self.cores:g} cores"
        )
