"""The Celery layer's configuration: explicit queues, JSON only, late acks, no hoarding, events on,
visibility timeout past the longest session, routing by model, and the worker command line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from kombu.utils.imports import symbol_by_name

from farm.kernel import names
from farm.kernel.domain import ModelKind
from farm.kernel.errors import BackendUnavailable
from farm.kernel.models import engines_for_queues
from farm.kernel.settings import Settings
from tasks.app import celery_config, create_app
from tasks.consumer import FastReconnectConsumer
from tasks.routing import queue_for_model, route_task
from tasks.worker import worker_argv

pytestmark = pytest.mark.unit


@pytest.fixture
def cfg(settings: Settings) -> Settings:
    return settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0", "max_session_s": 7200.0})


def test_every_queue_has_its_own_exchange_and_routing_key(cfg: Settings) -> None:
    queues = {q.name: q for q in celery_config(cfg)["task_queues"]}
    assert set(queues) == {"essence", "expression", "build"}
    for name, queue in queues.items():
        assert queue.exchange.name == name and queue.routing_key == name


def test_long_sessions_are_safe_with_the_redis_broker(cfg: Settings) -> None:
    conf = celery_config(cfg)
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["worker_disable_prefetch"]
    assert conf["broker_transport_options"]["visibility_timeout"] > cfg.max_session_s
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["worker_send_task_events"] and conf["task_send_sent_event"]


def test_the_producer_app_registers_no_farm_tasks(cfg: Settings) -> None:
    app = create_app(cfg)
    assert names.TASK_RUN_SESSION not in app.tasks


def test_without_a_redis_url_there_is_no_app(settings: Settings) -> None:
    with pytest.raises(BackendUnavailable):
        create_app(settings.model_copy(update={"redis_url": None}))


def test_sessions_are_routed_by_model_and_builds_to_build() -> None:
    body = {"session_id": "s", "model": "expression"}
    assert route_task(names.TASK_RUN_SESSION, (body,), {}, {}) == {
        "queue": "expression",
        "routing_key": "expression",
    }
    assert route_task(names.TASK_BUILD_AGENT, ({"agent_id": "A"},), {}, {})["queue"] == "build"
    assert route_task("other", (), {}, {}) is None
    assert queue_for_model(ModelKind.ESSENCE) == "essence"
    assert engines_for_queues(["build", "expression"], Settings()) == ["expression"]
    learned = Settings(expression_weights=Path("/weights"))
    assert engines_for_queues(["essence", "expression"], learned) == ["essence", "expression", "expression-2"]


def test_the_worker_command_line_defaults_to_threads_and_capacity(cfg: Settings) -> None:
    argv = worker_argv(cfg, ["essence"])
    assert "--pool=threads" in argv and f"--concurrency={cfg.worker_capacity}" in argv
    assert "--queues=essence" in argv
    assert "--concurrency=1" in worker_argv(cfg, ["build"])
    with pytest.raises(ValueError):
        worker_argv(cfg, ["gpu"])


def test_undecodable_or_future_messages_are_dropped_not_requeued() -> None:
    from celery.exceptions import Reject

    from farm.kernel.contracts import RunSessionMessage
    from tasks.tasks import _decode

    ok = _decode(RunSessionMessage, {"session_id": "s", "model": "essence"})
    assert ok.session_id == "s"
    for body in ({"model": "essence"}, {"session_id": "s", "model": "gpu"}, "nonsense"):
        with pytest.raises(Reject) as refused:
            _decode(RunSessionMessage, body)
        assert refused.value.requeue is False
    with pytest.raises(Reject):
        _decode(RunSessionMessage, {"session_id": "s", "model": "essence", "schema_version": 99})


class RecordingConnection:
    """A broker connection that records how the consumer asks it to retry."""

    def __init__(self) -> None:
        self.retry: dict[str, object] = {}

    def ensure_connection(self, *args: object, **kwargs: object) -> RecordingConnection:
        self.retry = kwargs
        return self


def test_the_worker_reconnects_to_the_broker_every_2_s_at_most(cfg: Settings) -> None:
    """kombu's default backoff grows to 30 s; the farm's consumer caps it at 2 s."""
    app = create_app(cfg)
    consumer_cls = symbol_by_name(app.conf.worker_consumer)
    assert consumer_cls is FastReconnectConsumer
    consumer = object.__new__(consumer_cls)  # only what ensure_connected reads
    consumer.app, consumer.first_connection_attempt, consumer.broker_connection_retry_attempt = app, False, 0
    conn = RecordingConnection()

    assert consumer.ensure_connected(conn) is conn
    assert conn.retry["interval_max"] == 2.0
    assert conn.retry["interval_start"] == 0.5 and conn.retry["interval_step"] == 0.5


def test_a_rejected_delivery_is_logged_in_one_line_without_a_traceback(
    cfg: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A full worker requeues a waiting session every ``NO_SLOT_BACKOFF_S``; Celery logged each with
    the traceback of the task's own ``raise Reject``. The line (task, id, reason) stays."""
    from tasks.tasks import register_tasks

    app = create_app(cfg)
    register_tasks(app)
    with caplog.at_level(logging.INFO, logger="celery.app.trace"):
        app.tasks[names.TASK_RUN_SESSION].apply(args=({"model": "essence"},))  # undecodable: rejected
    rejected = [r for r in caplog.records if r.name == "celery.app.trace"]
    assert len(rejected) == 1, [r.getMessage() for r in caplog.records]
    assert "undecodable RunSessionMessage" in rejected[0].getMessage()
    assert rejected[0].exc_info is None and "Traceback" not in caplog.text
