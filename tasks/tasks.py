"""Thin tasks: decode the message, hand it to the process's WorkerRuntime, map errors.

``farm.session.run``: the runtime claims the session under a lease and runs it on its event loop; a
duplicate delivery (the session is not QUEUED, or its lease is alive) exits without rendering.
``farm.agent.build``: build an Essence pack from the agent's portrait (``farm.sessions.build``).
Retries follow ``FarmError.retryable`` with bounded, logged backoff.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar

import pydantic
from celery import Celery, Task
from celery.exceptions import Reject

from farm.infra.backoff import capped_delay_s
from farm.infra.blobs import BlobStore
from farm.kernel import names
from farm.kernel.contracts import (
    SCHEMA_VERSION,
    BuildAgentMessage,
    BuildTaskResult,
    PreviewFaceMessage,
    RunSessionMessage,
    SessionTaskResult,
)
from farm.kernel.errors import FarmError, NotFound
from farm.sessions.build import build_agent
from farm.sessions.face_preview import preview_face
from farm.worker.runtime import WorkerRuntime
from tasks.hooks import current_previews, current_runtime

log = logging.getLogger(__name__)

NOT_READY_BACKOFF_S = 1.0
NO_SLOT_BACKOFF_S = 0.25
MAX_RETRIES = 3
RETRY_FIRST_S = 1.0  # then 2 s, then 4 s (farm.infra.backoff)
RETRY_MAX_S = 4.0

M = TypeVar("M", bound=pydantic.BaseModel)


class RejectWithoutTraceback(logging.Filter):
    """Celery logs every ``Reject`` at WARNING with the traceback of the task's own ``raise``. A session
    requeued by a full or cold worker is redelivered every ``NO_SLOT_BACKOFF_S`` until a slot frees,
    so under load that was a dozen lines per redelivery, none saying more than the first. The line
    stays (task, id, reason); the traceback goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if isinstance(data, dict) and data.get("description") == "rejected":
            record.exc_info = None
            record.exc_text = None
        return True


_REJECT_FILTER = RejectWithoutTraceback()


def _decode(model: type[M], body: Any) -> M:
    try:
        message = model.model_validate(body)
    except pydantic.ValidationError as exc:
        log.error("undecodable message dropped", extra={"message_type": model.__name__})
        raise Reject(f"undecodable {model.__name__}", requeue=False) from exc
    if getattr(message, "schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise Reject(f"unknown schema_version of {model.__name__}", requeue=False)
    return message


def _runtime(task: Task) -> WorkerRuntime:
    runtime = current_runtime(task.app)
    if runtime is None or not runtime.ready:
        time.sleep(NOT_READY_BACKOFF_S)  # a worker that lost its prewarm must not spin on redeliveries
        raise Reject("worker not ready", requeue=True)
    return runtime


def _retry(task: Task, exc: FarmError, fields: dict[str, str]) -> Exception:
    """A retryable FarmError → a bounded, logged Celery retry; any other → re-raised as it is."""
    attempt = task.request.retries
    if not exc.retryable or attempt >= MAX_RETRIES:
        return exc
    countdown = capped_delay_s(attempt, first_s=RETRY_FIRST_S, max_s=RETRY_MAX_S)
    log.warning("task failed, retrying", extra={**fields, "code": exc.code, "attempt": attempt + 1})
    return task.retry(exc=exc, countdown=countdown)


def register_tasks(app: Celery) -> None:
    """Register the farm's tasks on ``app`` under their stable names."""
    logging.getLogger("celery.app.trace").addFilter(_REJECT_FILTER)  # once: the filter is one object

    @app.task(name=names.TASK_RUN_SESSION, bind=True, max_retries=MAX_RETRIES)
    def run_session_task(self: Task, body: dict[str, Any]) -> dict[str, Any]:
        message = _decode(RunSessionMessage, body)
        fields = {"session_id": message.session_id}
        try:
            result = _runtime(self).run_session(message)
        except NotFound:
            log.warning("session vanished before it ran", extra=fields)
            result = SessionTaskResult(session_id=message.session_id, status="missing")
        except FarmError as exc:
            raise _retry(self, exc, fields) from exc
        if result.status == "no_slot":
            time.sleep(NO_SLOT_BACKOFF_S)  # let a worker with room take it before this one asks again
            raise Reject("no free slot in this worker", requeue=True)
        return result.model_dump(mode="json")

    @app.task(name=names.TASK_BUILD_AGENT, bind=True, max_retries=MAX_RETRIES)
    def build_agent_task(self: Task, body: dict[str, Any]) -> dict[str, Any]:
        message = _decode(BuildAgentMessage, body)
        fields = {"agent_id": message.agent_id}
        runtime = _runtime(self)
        blobs = BlobStore(runtime.settings.blob_dir)
        try:
            result = build_agent(runtime.settings, runtime.parts.agents, blobs, message.agent_id)
        except NotFound:
            log.warning("agent vanished before its build", extra=fields)
            result = BuildTaskResult(agent_id=message.agent_id, status="missing")
        except FarmError as exc:
            raise _retry(self, exc, fields) from exc
        return result.model_dump(mode="json")

    @app.task(name=names.TASK_PREVIEW_FACE, bind=True, max_retries=MAX_RETRIES)
    def preview_face_task(self: Task, body: dict[str, Any]) -> dict[str, Any]:
        message = _decode(PreviewFaceMessage, body)
        fields = {"preview_id": message.preview_id}
        runtime = _runtime(self)
        previews = current_previews(self.app)
        if previews is None:
            raise Reject("this worker has no preview store yet", requeue=True)
        try:
            done = preview_face(
                runtime.settings, previews, BlobStore(runtime.settings.blob_dir), message.preview_id
            )
        except NotFound:
            log.warning("preview expired before it ran", extra=fields)
            return {"preview_id": message.preview_id, "status": "missing"}
        except FarmError as exc:
            raise _retry(self, exc, fields) from exc
        return {"preview_id": done.preview_id, "status": done.status, "code": done.error_code}
