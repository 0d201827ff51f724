"""``farm sim``: a day of demand through the farm's scaling decision, old policy against new.

A discrete-time (1 s) model of the two render pools. Sessions arrive from a diurnal trace peaking
at ``peak`` concurrent sessions (with two bursts), split Essence/Expression, lasting minutes to an
hour; each waits on its pool's queue until a READY pod has a free slot. Every ``poll_s`` the
autoscaler decides the replica count:

- ``backlog``: today's KEDA redis-list trigger, ``ceil(LLEN / listLength)`` (``backlog_replicas``),
  with the HPA's default scale-down (300 s stabilisation). A removed pod hands its live sessions
  back (they re-queue: an avatar leaves and rejoins).
- ``demand``: ``farm.fleet.scaling.desired_replicas`` over ``pool_demand``-style counts (queued +
  live + warm spares), the very functions behind ``GET /scaling/{pool}``, with the manifests'
  slow scale-down (stabilisation window, 10 % of the pods per period). A removed pod stops intake and
  terminates when its last session ends (preStop ``/drainz``): nothing is handed back.

New pods are READY after the pool's cold start (node + image + weights + prewarm). A session that
waited ``abandon_s`` gives up (``refused``). Routing is slot-level (a free slot on any READY pod);
warm avatar routing (``WarmRouter``) is not modelled: it changes cache hits, not capacity.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from farm.fleet.scaling import PoolDemand, desired_replicas

DAY_S = 86_400


@dataclass(frozen=True)
class PoolModel:
    pool: str
    share: float  # fraction of sessions
    capacity: int  # sessions per pod (FARM_POD_CAPACITY)
    cold_start_s: float  # pod scheduled → READY
    max_replicas: int
    min_replicas: int
    warm_spares: int
    list_length: int  # the old trigger's listLength
    scale_down_window_s: float
    scale_down_period_s: float  # new policy: 10 % of the pods (at least one) per period


POOLS = (
    # Essence: CPU pod, ~45 s node + 20 s image + prewarm ~20 s (anchors §9). Spares sized so that
    # spares × capacity ≈ arrival rate at peak × cold start (8.3/s × 85 s ≈ 700 slots → 20 × 4 + bursts
    # absorbed by the queue); FARM_WARM_SPARES in k8s/config.yaml carries the same numbers.
    PoolModel("essence", 0.7, 4, 85.0, 2500, 1, 20, 2, 600.0, 60.0),
    # Expression: GPU pod, node + image + 5 GB weights + TRT plan found + warm: ~3 min (anchors §9).
    PoolModel("expression", 0.3, 8, 180.0, 1250, 0, 10, 4, 900.0, 120.0),
)


def concurrency(t: float, peak: int) -> float:
    """Diurnal target concurrency: 12% at night, peak at 15:00, bursts at 10:00 and 19:30."""
    day = (
        0.12 + 0.88 * max(0.0, math.sin(math.pi * (t / DAY_S * 24 - 6) / 18)) ** 2 if t >= 6 * 3600 else 0.12
    )
    burst = 0.0
    for centre, width, size in ((10 * 3600, 600, 0.15), (19.5 * 3600, 900, 0.12)):
        if abs(t - centre) < width:
            burst += size
    return peak * min(1.0, day + burst)


def durations(rng: np.random.Generator, n: int) -> np.ndarray:
    """Minutes to an hour: 60% 2–10 min, 30% 10–30 min, 10% 30–60 min (mean ≈ 14 min)."""
    kind = rng.random(n)
    low = np.where(kind < 0.6, 120, np.where(kind < 0.9, 600, 1800))
    high = np.where(kind < 0.6, 600, np.where(kind < 0.9, 1800, 3600))
    return rng.uniform(low, high)


MEAN_DURATION_S = 0.6 * 360 + 0.3 * 1200 + 0.1 * 2700


def backlog_replicas(queued: int, *, list_length: int, min_replicas: int, max_replicas: int) -> int:
    """What today's KEDA redis-list trigger asks for: ``ceil(LLEN / listLength)``, clamped."""
    return max(min_replicas, min(max_replicas, math.ceil(queued / list_length)))


@dataclass
class Pod:
    ready_at: float
    live: set[int] = field(default_factory=set)
    draining: bool = False


@dataclass
class PoolResult:
    pool: str
    policy: str
    sessions: int = 0
    refused: int = 0
    evicted: int = 0
    queue_wait_p50_s: float = 0.0
    queue_wait_p95_s: float = 0.0
    queue_wait_p99_s: float = 0.0
    queue_wait_p95_at_peak_s: float = 0.0
    pod_hours: float = 0.0
    idle_pod_hours: float = 0.0
    max_pods: int = 0


class _PoolSim:
    """One pool under one policy, stepped once per simulated second."""

    def __init__(self, model: PoolModel, policy: str, *, peak: int, seed: int, abandon_s: float) -> None:
        self.model, self.policy, self.peak, self.abandon_s = model, policy, peak, abandon_s
        rng = np.random.default_rng(seed)
        rate = [concurrency(t, peak) * model.share / MEAN_DURATION_S for t in range(DAY_S)]
        self.arrivals = rng.poisson(rate)
        self.lengths = iter(durations(rng, int(self.arrivals.sum()) + 1).tolist())
        self.pods: dict[int, Pod] = {}
        self.next_pod = 0
        self.starting: list[tuple[float, int]] = []
        self.queue: deque[tuple[int, float, float]] = deque()  # (session, enqueued_at, length_s)
        self.ends: list[tuple[float, int, int]] = []  # (end_at, session, pod)
        self.remaining: dict[int, float] = {}
        self.session_pod: dict[int, int] = {}
        self.started_at: dict[int, float] = {}
        self.waits: list[float] = []
        self.peak_waits: list[float] = []
        self.window_waits: list[float] = []
        self.free: set[int] = set()
        self.live_total = 0
        self.history: deque[tuple[float, int]] = deque()
        self.last_down = -1e9
        self.sid = 0
        self.result = PoolResult(model.pool, policy)
        self.trace: dict[str, list[float]] = {"t": [], "demand": [], "pods": [], "queued": [], "wait_p95": []}
        for _ in range(model.min_replicas + (model.warm_spares if policy == "demand" else 0)):
            self.add_pod(-model.cold_start_s)

    def add_pod(self, now: float) -> None:
        self.pods[self.next_pod] = Pod(ready_at=now + self.model.cold_start_s)
        heapq.heappush(self.starting, (now + self.model.cold_start_s, self.next_pod))
        self.next_pod += 1

    def end_sessions(self, now: float) -> None:
        while self.ends and self.ends[0][0] <= now:
            _, s, p = heapq.heappop(self.ends)
            if self.session_pod.get(s) != p:
                continue  # handed back earlier
            del self.session_pod[s]
            self.live_total -= 1
            pod = self.pods[p]
            pod.live.discard(s)
            if pod.draining and not pod.live:
                del self.pods[p]  # preStop returns: the pod terminates with nothing to hand back
            elif not pod.draining:
                self.free.add(p)

    def ready_pods(self, now: float) -> None:
        while self.starting and self.starting[0][0] <= now:
            _, p = heapq.heappop(self.starting)
            pod = self.pods.get(p)
            if pod is not None and not pod.draining and len(pod.live) < self.model.capacity:
                self.free.add(p)

    def arrive(self, t: int, now: float) -> None:
        for _ in range(int(self.arrivals[t])):
            self.queue.append((self.sid, now, next(self.lengths)))
            self.sid += 1
            self.result.sessions += 1

    def claim(self, now: float) -> None:
        while self.queue and now - self.queue[0][1] >= self.abandon_s:
            self.queue.popleft()
            self.result.refused += 1
        while self.queue and self.free:
            s, enqueued, length = self.queue.popleft()
            p = next(iter(self.free))
            pod = self.pods[p]
            pod.live.add(s)
            if len(pod.live) >= self.model.capacity:
                self.free.discard(p)
            self.session_pod[s] = p
            self.live_total += 1
            wait = now - enqueued
            self.waits.append(wait)
            self.window_waits.append(wait)
            if concurrency(now, self.peak) >= 0.95 * self.peak:
                self.peak_waits.append(wait)
            heapq.heappush(self.ends, (now + length, s, p))
            self.remaining[s], self.started_at[s] = length, now

    def wanted(self) -> tuple[int, float, float]:
        m = self.model
        if self.policy == "demand":  # the function behind GET /scaling/{pool}
            demand = PoolDemand(m.pool, queued=len(self.queue), live=self.live_total)
            want = desired_replicas(
                demand,
                capacity=m.capacity,
                warm_spares=m.warm_spares,
                min_replicas=m.min_replicas,
                max_replicas=m.max_replicas,
            )
            return want, m.scale_down_window_s, m.scale_down_period_s
        want = backlog_replicas(
            len(self.queue),
            list_length=m.list_length,
            min_replicas=m.min_replicas,
            max_replicas=m.max_replicas,
        )
        return want, 300.0, 15.0  # HPA defaults: 300 s stabilisation, 100 % per 15 s

    def autoscale(self, now: float) -> None:
        active = [p for p, pod in self.pods.items() if not pod.draining]
        want, window, period = self.wanted()
        self.history.append((now, want))
        while self.history and self.history[0][0] < now - window:
            self.history.popleft()
        if want > len(active):
            for _ in range(min(want - len(active), max(len(active), 20))):
                self.add_pod(now)
            return
        target = max(w for _, w in self.history)  # scale-down stabilisation
        if target >= len(active) or now - self.last_down < period:
            return
        self.last_down = now
        # new policy: at most 10 % of the pods (at least one) per period, as in k8s/keda.yaml
        step = len(active) if self.policy == "backlog" else max(1, math.ceil(0.1 * len(active)))
        down = min(len(active) - target, step)
        for p in sorted(active, reverse=True)[:down]:  # the ReplicaSet removes the newest first
            self.remove_pod(p, now)

    def remove_pod(self, p: int, now: float) -> None:
        pod = self.pods[p]
        self.free.discard(p)
        if self.policy == "demand" and pod.live:
            pod.draining = True  # preStop /drainz: no intake, wait for the live sessions
            return
        for s in pod.live:  # SIGTERM drain: handed back after the grace, re-queued
            self.session_pod.pop(s, None)
            self.live_total -= 1
            self.result.evicted += 1
            left = self.remaining[s] - (now - self.started_at[s])
            self.queue.append((s, now, max(1.0, left)))
        del self.pods[p]

    def account(self, now: float) -> None:
        n = len(self.pods)
        self.result.pod_hours += n / 60
        self.result.idle_pod_hours += sum(1 for pod in self.pods.values() if not pod.live) / 60
        self.result.max_pods = max(self.result.max_pods, n)
        self.trace["t"].append(now / 3600)
        self.trace["demand"].append(len(self.queue) + self.live_total)
        self.trace["pods"].append(n)
        self.trace["queued"].append(len(self.queue))
        self.trace["wait_p95"].append(
            float(np.percentile(self.window_waits, 95)) if self.window_waits else 0.0
        )
        self.window_waits = []

    def finish(self) -> PoolResult:
        r = self.result
        if self.waits:
            r.queue_wait_p50_s, r.queue_wait_p95_s, r.queue_wait_p99_s = (
                round(float(x), 3) for x in np.percentile(self.waits, [50, 95, 99])
            )
        if self.peak_waits:
            r.queue_wait_p95_at_peak_s = round(float(np.percentile(self.peak_waits, 95)), 3)
        r.pod_hours, r.idle_pod_hours = round(r.pod_hours, 1), round(r.idle_pod_hours, 1)
        return r


def simulate_pool(
    model: PoolModel, policy: str, *, peak: int, seed: int, poll_s: int = 5, abandon_s: float = 120.0
) -> tuple[PoolResult, dict[str, list[float]]]:
    """One pool for one day under ``policy`` (``backlog`` or ``demand``): result and per-minute trace."""
    sim = _PoolSim(model, policy, peak=peak, seed=seed, abandon_s=abandon_s)
    for t in range(DAY_S):
        now = float(t)
        sim.end_sessions(now)
        sim.ready_pods(now)
        sim.arrive(t, now)
        sim.claim(now)
        if t % poll_s == 0:
            sim.autoscale(now)
        if t % 60 == 0:
            sim.account(now)
    return sim.finish(), sim.trace


def run(
    peak: int = 10_000, seed: int = 7, spares: dict[str, int] | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, list[float]]]]]:
    """Both policies over both pools: a JSON-able summary and the per-minute traces for the plot."""
    pools = [replace(m, warm_spares=(spares or {}).get(m.pool, m.warm_spares)) for m in POOLS]
    summary: dict[str, Any] = {
        "peak_sessions": peak,
        "seed": seed,
        "warm_spares": {m.pool: m.warm_spares for m in pools},
        "cold_start_s": {m.pool: m.cold_start_s for m in pools},
        "policies": {},
    }
    traces: dict[str, dict[str, dict[str, list[float]]]] = {}
    for policy in ("backlog", "demand"):
        summary["policies"][policy] = {}
        traces[policy] = {}
        for model in pools:
            result, trace = simulate_pool(model, policy, peak=peak, seed=seed)
            summary["policies"][policy][model.pool] = asdict(result)
            traces[policy][model.pool] = trace
    return summary, traces


def plot(traces: dict[str, dict[str, dict[str, list[float]]]], path: str) -> None:
    """Demand, pods and queue-wait p95 over the day, per pool, both policies (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(13, 9), sharex=True)
    for col, pool in enumerate(p.pool for p in POOLS):
        for policy, style in (("backlog", "--"), ("demand", "-")):
            tr = traces[policy][pool]
            axes[0][col].plot(tr["t"], tr["demand"], style, label=f"{policy}: queued+live")
            axes[1][col].plot(tr["t"], tr["pods"], style, label=f"{policy}: pods")
            axes[2][col].plot(tr["t"], tr["wait_p95"], style, label=f"{policy}: wait p95")
        axes[0][col].set_title(pool)
        axes[0][col].set_ylabel("sessions")
        axes[1][col].set_ylabel("pods")
        axes[2][col].set_ylabel("queue wait p95 (s)")
        axes[2][col].set_xlabel("hour of day")
        for ax in axes[:, col]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
