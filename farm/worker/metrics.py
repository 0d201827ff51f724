"""Prometheus metrics of a render worker, safe across Celery's worker processes.

One ``WorkerMetrics`` per process, built once by the worker runtime. Under a forking pool every child
writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multi-process mode; the
directory must be empty at pod start: an ``emptyDir`` at /tmp/prometheus in the manifests), and
``render_latest()`` (served as ``/metrics`` next to the health probes) aggregates every process.
Gauges use ``livesum`` (sessions, free slots) or ``liveall`` (READY) so dead processes drop out.

Labels are bounded: ``pool`` (a render queue), ``code`` (a ``FarmError`` code), ``stage`` (a TTFF
breakdown stage). Never a session id or tenant: those go to the JSON logs.

``MetricsMiddleware`` makes the calls from the runtime's hooks:
  ``session_started(pool, queue_wait_s)``, ``session_ended(pool)``, ``set_capacity(pool, free_slots)``,
  ``set_ready(pool, ready)``, ``ttff(pool, total_s, stages={"claim": s, "avatar": s, ...})``,
  ``frames(pool, rendered, late, skipped=, resyncs=, starved=)``, ``delivered_fps(pool, fps)``,
  ``av_offset(pool, seconds)``, ``batch(pool, size)``,
  ``lease_lost(pool)``, ``handed_back(pool)``, ``failed(pool, code)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from farm.kernel.contracts import RunSessionMessage
from farm.worker.middleware import WorkerMiddleware

if TYPE_CHECKING:
    from farm.sessions.runner import RunResult, SessionRunner
    from farm.worker.runtime import WorkerRuntime

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
_WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
_OFFSET_BUCKETS = (-0.2, -0.1, -0.045, -0.02, 0, 0.02, 0.045, 0.1, 0.2)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
_FPS_BUCKETS = (5, 10, 15, 20, 22, 24, 24.5, 25, 26)


class WorkerMetrics:
    """The worker's metrics on ``registry`` (a fresh one per instance, so tests can build several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.live = Gauge(
            "farm_worker_live_sessions", "Sessions running", ["pool"], registry=r, multiprocess_mode="livesum"
        )
        self.free = Gauge(
            "farm_worker_free_slots", "Free session slots", ["pool"], registry=r, multiprocess_mode="livesum"
        )
        self.ready = Gauge(
            "farm_worker_ready",
            "1 while the model pool is READY",
            ["pool"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.queue_wait = Histogram(
            "farm_session_queue_wait_seconds",
            "Created to claimed",
            ["pool"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.ttff_total = Histogram(
            "farm_session_ttff_seconds",
            "Claim to first frame out",
            ["pool"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttff_stage = Histogram(
            "farm_session_ttff_stage_seconds",
            "TTFF breakdown by stage",
            ["pool", "stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rendered = Counter(
            "farm_frames_rendered", "Frames published with a new picture", ["pool"], registry=r
        )
        self.late = Counter(
            "farm_frames_late",
            "Frames without a new picture in time (skipped) or after a stall",
            ["pool"],
            registry=r,
        )
        self.skipped = Counter(
            "farm_frames_skipped",
            "Pictures skipped to keep the voice on the audio clock (the viewer kept the previous one)",
            ["pool"],
            registry=r,
        )
        self.resyncs = Counter(
            "farm_audio_resyncs",
            "Stalls past the pump's lag bound: a gap in a session's audio",
            ["pool"],
            registry=r,
        )
        self.starved = Counter(
            "farm_speech_starved_frames",
            "Silent frames inside an open speech segment: its audio had not reached the session when due "
            "(a late agent or a late path)",
            ["pool"],
            registry=r,
        )
        self.fps = Histogram(
            "farm_session_delivered_fps",
            "Pictures per second a session's viewers received, per ended session",
            ["pool"],
            buckets=_FPS_BUCKETS,
            registry=r,
        )
        self.offset = Histogram(
            "farm_av_offset_seconds",
            "Video minus audio timestamp",
            ["pool"],
            buckets=_OFFSET_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "farm_render_batch_size", "Frames per render batch", ["pool"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.started = Counter("farm_sessions_started", "Sessions claimed and started", ["pool"], registry=r)
        self.leases_lost = Counter(
            "farm_session_leases_lost", "Leases lost mid-session", ["pool"], registry=r
        )
        self.hand_backs = Counter(
            "farm_session_hand_backs", "Sessions handed back on drain", ["pool"], registry=r
        )
        self.failures = Counter(
            "farm_session_failures", "Sessions FAILED, by code", ["pool", "code"], registry=r
        )
        self.speech_dropped = Counter(
            "farm_speech_dropped_seconds",
            "Speech refused because max_audio_s of it already waited to be rendered",
            ["pool"],
            registry=r,
        )

    # ------------------------------------------------------------ the runtime's surface
    def session_started(self, pool: str, queue_wait_s: float) -> None:
        self.started.labels(pool).inc()
        self.live.labels(pool).inc()
        self.queue_wait.labels(pool).observe(max(0.0, queue_wait_s))

    def session_ended(self, pool: str) -> None:
        self.live.labels(pool).dec()

    def set_capacity(self, pool: str, free_slots: int) -> None:
        self.free.labels(pool).set(free_slots)

    def set_ready(self, pool: str, ready: bool) -> None:
        self.ready.labels(pool).set(1 if ready else 0)

    def ttff(self, pool: str, total_s: float, stages: Mapping[str, float] | None = None) -> None:
        self.ttff_total.labels(pool).observe(total_s)
        for stage, seconds in (stages or {}).items():
            self.ttff_stage.labels(pool, stage).observe(seconds)

    def frames(
        self, pool: str, rendered: int, late: int = 0, *, skipped: int = 0, resyncs: int = 0, starved: int = 0
    ) -> None:
        self.rendered.labels(pool).inc(rendered)
        if late:
            self.late.labels(pool).inc(late)
        if skipped:
            self.skipped.labels(pool).inc(skipped)
        if resyncs:
            self.resyncs.labels(pool).inc(resyncs)
        if starved:
            self.starved.labels(pool).inc(starved)

    def delivered_fps(self, pool: str, fps: float) -> None:
        self.fps.labels(pool).observe(fps)

    def av_offset(self, pool: str, seconds: float) -> None:
        self.offset.labels(pool).observe(seconds)

    def batch(self, pool: str, size: int) -> None:
        self.batch_size.labels(pool).observe(size)

    def lease_lost(self, pool: str) -> None:
        self.leases_lost.labels(pool).inc()

    def handed_back(self, pool: str) -> None:
        self.hand_backs.labels(pool).inc()

    def dropped_speech(self, pool: str, seconds: float) -> None:
        self.speech_dropped.labels(pool).inc(seconds)

    def failed(self, pool: str, code: str) -> None:
        self.failures.labels(pool, code).inc()


def render_latest(metrics: WorkerMetrics | None = None) -> bytes:
    """The exposition text: every process's samples under multi-process mode, else ``metrics``'."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    if metrics is None:
        raise ValueError(f"no metrics to render: pass the WorkerMetrics or set {MULTIPROC_ENV}")
    return generate_latest(metrics.registry)


def process_exited(pid: int) -> None:
    """Call from the pool's child-exit hook so its live gauges stop counting (multi-process mode)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)


class MetricsMiddleware(WorkerMiddleware):
    """Reports the runtime's sessions to a ``WorkerMetrics`` (Prometheus)."""

    name = "metrics"

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def after_claim(
        self, runtime: WorkerRuntime, message: RunSessionMessage, timings: Mapping[str, float]
    ) -> None:
        self.metrics.session_started(message.model.value, timings["queue_wait"] / 1000.0)

    def on_session_end(
        self, runtime: WorkerRuntime, message: RunSessionMessage, runner: SessionRunner, result: RunResult
    ) -> None:
        metrics, pool = self.metrics, message.model.value
        stats = runner.stats
        metrics.session_ended(pool)
        metrics.frames(
            pool,
            stats.rendered,
            stats.late,
            skipped=stats.skipped,
            resyncs=stats.resyncs,
            starved=stats.starved,
        )
        if stats.frames:
            metrics.delivered_fps(pool, stats.delivered_fps())
        if stats.dropped_speech_s:
            metrics.dropped_speech(pool, stats.dropped_speech_s)
        session = result.session
        timings = (session.timings_ms or {}) if session is not None else {}
        if "first_frame" in timings:
            stages = {
                k: v / 1000.0 for k, v in timings.items() if k in ("queue_wait", "claim", "avatar_ready")
            }
            metrics.ttff(pool, timings["first_frame"] / 1000.0, stages)
        if result.handed_back:
            metrics.handed_back(pool)
        elif result.lease_lost:
            metrics.lease_lost(pool)
        elif session is not None and session.failure:
            metrics.failed(pool, session.failure.get("code", "INTERNAL_ERROR"))

    def on_tick(self, runtime: WorkerRuntime) -> None:
        free = runtime.free_slots
        for pool in runtime.queues:
            self.metrics.set_capacity(pool, free)
            self.metrics.set_ready(pool, runtime.ready)
