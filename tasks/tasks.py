"""Thin tasks: decode the message, call one core function, map errors.

``farm.session.run``: claim the session under a lease and run it with the SessionRunner. A
duplicate delivery (the session is not QUEUED, or its lease is alive) exits without rendering.
``farm.agent.build``: build an Essence pack from the agent's portrait and mark the agent ready/failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from celery import Celery, Task
from celery.exceptions import Reject

from farm import names
from farm.contracts import SCHEMA_VERSION, BuildAgentMessage, RunSessionMessage
from farm.domain import AgentStatus
from farm.errors import BackendUnavailable, FarmError, NotFound
from farm.media import load_image_rgb
from farm.sessions.runner import SessionRunner
from tasks.context import WorkerContext
from tasks.signals import current_context

log = logging.getLogger(__name__)

NOT_READY_BACKOFF_S = 1.0


M = TypeVar("M", bound=pydantic.BaseModel)


def _decode(model: type[M], body: Any) -> M:
    try:
        message = model.model_validate(body)
    except pydantic.ValidationError as exc:
        log.error("undecodable message dropped", extra={"message_type": model.__name__})
        raise Reject(f"undecodable {model.__name__}", requeue=False) from exc
    if getattr(message, "schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise Reject(f"unknown schema_version of {model.__name__}", requeue=False)
    return message


def _context(task: Task) -> WorkerContext:
    ctx = current_context(task.app)
    if ctx is None or not ctx.ready:
        time.sleep(NOT_READY_BACKOFF_S)  # a worker that lost its prewarm must not spin on redeliveries
        raise Reject("worker not ready", requeue=True)
    return ctx


def run_session(ctx: WorkerContext, message: RunSessionMessage) -> dict[str, Any]:
    """Claim and run one session; the core of ``farm.session.run``."""
    assert ctx.pool is not None, "a render task reached a worker without a ModelPool"
    started = time.perf_counter()
    lease = ctx.store.claim(message.session_id, ctx.worker_id, ctx.settings.lease_ttl_s)
    claimed_at = time.perf_counter()
    if lease is None:
        log.info("duplicate delivery: session not claimable", extra={"session_id": message.session_id})
        return {"status": "duplicate", "session_id": message.session_id}
    timings = {
        "queue_wait": round(max(0.0, time.time() - message.enqueued_at) * 1000.0, 3),
        "claim": round((claimed_at - started) * 1000.0, 3),
    }
    runner = SessionRunner(
        lease=lease,
        store=ctx.store,
        pool=ctx.pool,
        settings=ctx.settings,
        io_factory=ctx.io_factory,
        resolve_avatar=ctx.resolve_avatar,
        claimed_at=claimed_at,
        timings_ms=timings,
        on_handback=ctx.resubmit,
        attach_dynamics=ctx.attach_dynamics if ctx.dynamics is not None else None,
    )
    with ctx.active_session(runner):
        result = asyncio.run(runner.run())
    status = "lease_lost" if result.session is None else result.session.state.value
    if result.handed_back:
        status = "handed_back"
    return {"status": status, "session_id": message.session_id, "frames": result.frames}


def build_agent(ctx: WorkerContext, message: BuildAgentMessage) -> dict[str, Any]:
    """Build the Essence pack of an agent; the agent ends READY (with ``pack_ref``) or FAILED."""
    from farm.render.essence import motion
    from farm.render.essence.builder import build_pack

    settings = ctx.settings
    agent = ctx.agents.get(message.agent_id)
    out_dir = settings.pack_dir / agent.id
    try:
        image = load_image_rgb(ctx.blobs.path(agent.image_ref), settings.max_image_pixels)
        build_pack(image, out_dir, size=settings.essence_size, options=agent.build)
    except FarmError as exc:
        ctx.agents.update(agent.id, AgentStatus.FAILED, error_message=exc.message)
        return {"status": "failed", "agent_id": agent.id, "code": exc.code}
    except Exception:
        log.exception("pack build failed", extra={"agent_id": agent.id})
        ctx.agents.update(agent.id, AgentStatus.FAILED, error_message="the pack build failed")
        return {"status": "failed", "agent_id": agent.id, "code": "INTERNAL_ERROR"}
    _write_previews(ctx, agent.id, out_dir)
    pack_ref = str(out_dir.relative_to(settings.data_dir))
    ctx.agents.update(agent.id, AgentStatus.READY, pack_ref=pack_ref, gestures=list(motion.GESTURES))
    return {"status": "ready", "agent_id": agent.id, "pack_ref": pack_ref}


def _write_previews(ctx: WorkerContext, agent_id: str, pack_dir: Path) -> None:
    """Gesture preview MP4s for the dynamics catalogue; a failure leaves the agent usable."""
    from farm.dynamics.catalogue import previews_dir
    from farm.dynamics.previews import write_gesture_previews
    from farm.render.essence import load_pack

    try:
        write_gesture_previews(load_pack(pack_dir), previews_dir(ctx.settings.data_dir, agent_id))
    except Exception:
        log.exception("gesture previews not written", extra={"agent_id": agent_id})


def register_tasks(app: Celery) -> None:
    """Register the farm's tasks on ``app`` under their stable names."""

    @app.task(name=names.TASK_RUN_SESSION, bind=True, max_retries=3)
    def run_session_task(self: Task, body: dict[str, Any]) -> dict[str, Any]:
        message = _decode(RunSessionMessage, body)
        try:
            return run_session(_context(self), message)
        except NotFound:
            log.warning("session vanished before it ran", extra={"session_id": message.session_id})
            return {"status": "missing", "session_id": message.session_id}
        except BackendUnavailable as exc:
            raise self.retry(exc=exc, countdown=1.0) from exc

    @app.task(name=names.TASK_BUILD_AGENT, bind=True, max_retries=3)
    def build_agent_task(self: Task, body: dict[str, Any]) -> dict[str, Any]:
        message = _decode(BuildAgentMessage, body)
        try:
            return build_agent(_context(self), message)
        except NotFound:
            log.warning("agent vanished before its build", extra={"agent_id": message.agent_id})
            return {"status": "missing", "agent_id": message.agent_id}
        except BackendUnavailable as exc:
            raise self.retry(exc=exc, countdown=1.0) from exc
