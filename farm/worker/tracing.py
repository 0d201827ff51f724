"""Tracing: one structured log span per session, from claim to its end, with what the viewer got.

The span carries ids and numbers only (never user content): the TTFF stages, frames written,
pictures skipped to keep the voice real time, stalls, the render estimate and the delivered frame
rate. A log pipeline (JSON logs, ``FARM_LOG_FORMAT=json``) turns them into traces and dashboards.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from farm.kernel.contracts import RunSessionMessage
from farm.worker.middleware import WorkerMiddleware

if TYPE_CHECKING:
    from farm.sessions.runner import RunResult, SessionRunner
    from farm.worker.runtime import WorkerRuntime

log = logging.getLogger("farm.trace")

TTFF_STAGES = ("queue_wait", "claim", "model_ready", "avatar_ready", "sink_ready", "first_frame")


class Tracing(WorkerMiddleware):
    name = "tracing"

    def after_claim(
        self, runtime: WorkerRuntime, message: RunSessionMessage, timings: Mapping[str, float]
    ) -> None:
        log.info(
            "session claimed",
            extra={
                **runtime.fields,
                "session_id": message.session_id,
                "model": message.model.value,
                **timings,
            },
        )

    def on_session_end(
        self, runtime: WorkerRuntime, message: RunSessionMessage, runner: SessionRunner, result: RunResult
    ) -> None:
        stats = runner.stats
        session = result.session
        outcome = (
            "handed_back"
            if result.handed_back
            else "lease_lost"
            if result.lease_lost
            else session.state.value
            if session is not None
            else "unknown"
        )
        session_ms = (session.timings_ms or {}) if session is not None else {}
        timings = {k: v for k, v in session_ms.items() if k in TTFF_STAGES}
        log.info(
            "session span",
            extra={
                **runtime.fields,
                "session_id": message.session_id,
                "model": message.model.value,
                "outcome": outcome,
                "frames": stats.frames,
                "skipped_images": stats.skipped,
                "resyncs": stats.resyncs,
                "starved_frames": stats.starved,
                "render_ms": round(stats.render_ms, 2),
                "delivered_fps": round(stats.delivered_fps(), 2),
                **{f"ttff_{k}_ms": v for k, v in timings.items()},
            },
        )
