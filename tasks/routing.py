"""Queues and routing of the Celery layer: each queue declared with its own exchange and routing key.

A bare ``Queue("x")`` inherits the default queue's exchange and key (the worker banner then shows
``gpu exchange=cpu(direct) key=cpu``), so every queue is declared explicitly. Sessions go to the
queue named after their model; agent builds to ``build``.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from farm.kernel import names
from farm.kernel.domain import ModelKind

ALL_QUEUES: tuple[str, ...] = (names.QUEUE_ESSENCE, names.QUEUE_EXPRESSION, names.QUEUE_BUILD)

MODEL_QUEUES: dict[ModelKind, str] = {
    ModelKind.ESSENCE: names.QUEUE_ESSENCE,
    ModelKind.EXPRESSION: names.QUEUE_EXPRESSION,
}


def declare_queues() -> tuple[Queue, ...]:
    """One direct exchange per queue, routing key = queue name (= the Redis list KEDA watches)."""
    return tuple(Queue(q, Exchange(q, type="direct"), routing_key=q) for q in ALL_QUEUES)


def worker_kombu_queue(worker_id: str) -> Queue:
    """The private (warm-routing) queue of one worker, with its own direct exchange and routing key."""
    name = names.worker_queue(worker_id)
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def queue_for_model(model: ModelKind | str) -> str:
    return MODEL_QUEUES[ModelKind(model)]


def route_task(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any], **_: Any
) -> Any:
    """Celery ``task_routes`` hook: sessions by their model, builds and face previews to ``build``."""
    if name in (names.TASK_BUILD_AGENT, names.TASK_PREVIEW_FACE):
        return {"queue": names.QUEUE_BUILD, "routing_key": names.QUEUE_BUILD}
    if name == names.TASK_RUN_SESSION:
        body = args[0] if args else kwargs.get("body", {})
        queue = queue_for_model(body["model"])
        return {"queue": queue, "routing_key": queue}
    return None
