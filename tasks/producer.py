"""The API side of the Celery layer: send tasks by name, never import worker code.

``CelerySessionQueue`` implements ``farm.sessions.base.SessionQueue``; ``CeleryBuildQueue`` the
API's build queue. Broker errors become ``BackendUnavailable`` (503, retryable).
"""

from __future__ import annotations

import uuid

from celery import Celery
from celery.result import AsyncResult
from kombu import Queue
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from farm.kernel import names
from farm.kernel.contracts import BuildAgentMessage, PreviewFaceMessage, RunSessionMessage
from farm.kernel.errors import BackendUnavailable
from farm.kernel.settings import Settings
from tasks.app import create_app
from tasks.routing import queue_for_model, worker_kombu_queue

_BROKER_ERRORS = (OperationalError, KombuError, RedisError, ConnectionError, OSError)


def producer_app(settings: Settings) -> Celery:
    """A Celery app for sending only (no tasks registered, no worker hooks)."""
    return create_app(settings)


def task_id_for(session_id: str) -> str:
    """Task ids start with the session id, so Flower and worker logs show which session a task runs."""
    return f"{session_id}-{uuid.uuid4().hex[:8]}"


class CelerySessionQueue:
    """SessionQueue over Celery: ``farm.session.run`` on the queue named after the model."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def submit(self, message: RunSessionMessage) -> None:
        self.send(message)

    def send(self, message: RunSessionMessage) -> AsyncResult:
        """Like ``submit`` but returns the AsyncResult (benchmarks and tests wait on it).

        A message naming ``worker_id`` goes to that worker's private queue (warm routing; declared on
        publish), any other to its model's shared queue.
        """
        queue: str | Queue = queue_for_model(message.model)
        routing_key = str(queue)
        if message.worker_id is not None:
            queue = worker_kombu_queue(message.worker_id)
            routing_key = queue.name
        try:
            return self._app.send_task(
                names.TASK_RUN_SESSION,
                args=[message.model_dump(mode="json")],
                queue=queue,
                routing_key=routing_key,
                task_id=task_id_for(message.session_id),
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.2},
            )
        except _BROKER_ERRORS as exc:
            raise BackendUnavailable("the session queue is unavailable") from exc

    def delete_worker_queue(self, worker_id: str) -> None:
        """Remove a worker's private queue (list and binding); what it still held the rescuer re-sends."""
        try:
            with self._app.connection_for_write() as conn:
                queue = worker_kombu_queue(worker_id)(conn.default_channel)
                queue.declare()  # kombu deletes only the bindings its channel knows of
                queue.delete()
        except _BROKER_ERRORS as exc:
            raise BackendUnavailable("the broker is unavailable") from exc


class CeleryBuildQueue:
    """The API's BuildQueue: ``farm.agent.build`` (and ``farm.agent.preview``) on the ``build`` queue."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def submit(self, message: BuildAgentMessage | PreviewFaceMessage) -> None:
        if isinstance(message, PreviewFaceMessage):
            submit_preview(self._app, message)
        else:
            submit_build(self._app, message)


def submit_preview(app: Celery, message: PreviewFaceMessage) -> AsyncResult:
    """Enqueue a face/framing preview of an uploaded photo (a build worker answers in ~1 s)."""
    try:
        return app.send_task(
            names.TASK_PREVIEW_FACE,
            args=[message.model_dump(mode="json")],
            queue=names.QUEUE_BUILD,
            routing_key=names.QUEUE_BUILD,
            task_id=f"{message.preview_id}-{uuid.uuid4().hex[:8]}",
        )
    except _BROKER_ERRORS as exc:
        raise BackendUnavailable("the build queue is unavailable") from exc


def submit_build(app: Celery, message: BuildAgentMessage) -> AsyncResult:
    """Enqueue an Essence pack build for ``message.agent_id``."""
    try:
        return app.send_task(
            names.TASK_BUILD_AGENT,
            args=[message.model_dump(mode="json")],
            queue=names.QUEUE_BUILD,
            routing_key=names.QUEUE_BUILD,
            task_id=f"{message.agent_id}-{uuid.uuid4().hex[:8]}",
        )
    except _BROKER_ERRORS as exc:
        raise BackendUnavailable("the build queue is unavailable") from exc
