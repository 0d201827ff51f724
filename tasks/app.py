"""Celery app factory. The same configuration serves the API (producer) and the workers.

``create_app(settings)`` only configures Celery: it is import-light (no render code) so the API can
use it to send tasks by name. Worker entrypoints (``tasks.worker.create_worker_app``) register the
tasks and the process hooks on top. Settings come in as an object; the environment is read only in
``tasks.celery_entry``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from farm.errors import BackendUnavailable
from farm.settings import Settings
from tasks.routing import declare_queues, route_task

VISIBILITY_MARGIN_S = 600.0
"""How much longer than the longest session an unacked message stays invisible before redelivery."""


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings of the farm, after Celery's guidance for long tasks (late acks, no
    prefetch, a visibility timeout past the longest task)."""
    if not settings.redis_url:
        raise BackendUnavailable("FARM_REDIS_URL is not set (farm up starts an embedded server)")
    visibility_s = int(settings.max_session_s + VISIBILITY_MARGIN_S)
    transport = {"visibility_timeout": visibility_s}
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_queues": declare_queues(),
        "task_default_queue": "essence",
        "task_default_exchange": "essence",
        "task_default_routing_key": "essence",
        "task_routes": (route_task,),
        "task_create_missing_queues": False,
        # JSON only: a message is data, never code.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Long sessions: ack late, never hoard, re-queue what a dying worker held.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
        # Flower sees everything.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "result_expires": 24 * 3600,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


def create_app(settings: Settings) -> Celery:
    """A configured Celery app with no tasks registered (producers, Flower, inspection)."""
    app = Celery("farm", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app
