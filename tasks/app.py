"""Celery app factory. The same configuration serves the API (producer) and the workers.

``create_app(settings)`` only configures Celery: it is import-light (no render code) so the API can
use it to send tasks by name. Worker entrypoints (``tasks.worker.create_worker_app``) register the
tasks and the process hooks on top. Settings come in as an object; the environment is read only in
``tasks.celery_entry``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from celery import Celery

from farm.infra.redis_conn import parse_sentinel_url
from farm.kernel.errors import BackendUnavailable
from farm.kernel.settings import Settings
from tasks.broker import REDIS_TRANSPORT, SENTINEL_TRANSPORT
from tasks.routing import declare_queues, route_task

VISIBILITY_MARGIN_S = 600.0
"""How much longer than the longest session an unacked message stays invisible before redelivery."""


def broker(redis_url: str, transport_options: dict[str, Any]) -> dict[str, Any]:
    """Broker URL, transport class and options for ``redis_url`` (either form of
    ``farm.infra.redis_conn``): a sentinel URL becomes kombu's ``sentinel://`` list with ``master_name``."""
    target = parse_sentinel_url(redis_url)
    if target is None:
        return {
            "broker_url": redis_url,
            "broker_transport": REDIS_TRANSPORT,
            "broker_transport_options": transport_options,
        }
    auth = f":{quote(target.password, safe='')}@" if target.password else ""
    urls = ";".join(f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.sentinels)
    options = {**transport_options, "master_name": target.master}
    if target.password:
        options["sentinel_kwargs"] = {"password": target.password}
    return {"broker_url": urls, "broker_transport": SENTINEL_TRANSPORT, "broker_transport_options": options}


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings of the farm, after Celery's guidance for long tasks (late acks, no
    prefetch, a visibility timeout past the longest task)."""
    if not settings.redis_url:
        raise BackendUnavailable("FARM_REDIS_URL is not set (farm up starts an embedded server)")
    visibility_s = int(settings.max_session_s + VISIBILITY_MARGIN_S)
    return {
        **broker(settings.redis_url, {"visibility_timeout": visibility_s}),
        # A Redis outage or failover never ends a worker: retry the broker for as long as it takes
        # (the default gives up after 100 attempts, about 50 minutes, and exits).
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
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
        # No result backend: the farm reads a session's outcome from its store, never from Celery.
        # (A result write during a Redis outage also failed outside the task body and left the
        # request "active" for ever, so the worker stopped consuming after the outage.)
        "task_ignore_result": True,
        # A live session outlasts a broker blip: its lease in the store decides whether it goes on
        # (renewed in time) or is re-queued by the reaper; cancelling it on the blip would not help.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Back on the broker within ~2 s of its return, not after kombu's backoff of up to 30 s.
        "worker_consumer": "tasks.consumer:FastReconnectConsumer",
    }


def create_app(settings: Settings) -> Celery:
    """A configured Celery app with no tasks registered (producers, Flower, inspection)."""
    app = Celery("farm", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app
