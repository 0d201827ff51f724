"""The farm's kombu transport turns kombu's detached-channel AttributeError into a connection error.

A message delivered on a channel whose connection Celery has since closed (a broker outage) is acked
when its task ends. kombu's own Redis channel then rebuilds a pool from the detached transport and
raises ``AttributeError`` (the worker used to exit on it); the farm's channel raises a connection
error, which kombu logs ("Couldn't ack") and the worker survives. See ``tasks.broker``.
"""

from __future__ import annotations

import logging

import pytest
from kombu import Connection, Exchange, Message, Queue

from tasks.broker import REDIS_TRANSPORT

pytestmark = pytest.mark.integration


def detached_delivery(redis_url: str, transport: str | None) -> tuple[Connection, Message]:
    """A message received on a channel whose connection was then closed and pools dropped: the state
    Celery's consumer leaves a running task's channel in after a broker connection loss."""
    conn = Connection(redis_url, transport=transport)
    channel = conn.channel()
    name = "farm-transport-test"
    queue = Queue(name, Exchange(name), name)(channel)
    queue.declare()
    conn.Producer(channel).publish({"n": 1}, exchange=name, routing_key=name)
    message = queue.get(no_ack=False)
    assert message is not None
    conn.close()  # the transport is detached: transport.client is None from here on
    channel._disconnect_pools()  # and the channel holds no pool (as after a restore that was skipped)
    return conn, message


def test_kombus_own_channel_raises_attribute_error_on_a_late_ack(redis_url: str) -> None:
    conn, message = detached_delivery(redis_url, transport=None)
    with pytest.raises(AttributeError, match="NoneType"):
        message.ack_log_error(logging.getLogger("test"), conn.connection_errors)


def test_the_farms_channel_logs_a_late_ack_as_a_connection_error(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn, message = detached_delivery(redis_url, transport=REDIS_TRANSPORT)

    message.ack_log_error(logging.getLogger("test"), conn.connection_errors)

    assert "Couldn't ack" in caplog.text
    assert "broker connection of this channel was closed" in caplog.text


def test_the_farms_channel_logs_a_late_requeue_as_a_connection_error(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn, message = detached_delivery(redis_url, transport=REDIS_TRANSPORT)

    message.reject_log_error(logging.getLogger("test"), conn.connection_errors, requeue=True)

    assert "Couldn't reject" in caplog.text
