"""The farm's kombu transports: kombu's Redis and Sentinel transports with one defect worked around.

The defect (kombu 5.7.0, ``kombu/transport/redis.py``): when the broker connection breaks, Celery's
consumer closes the kombu ``Connection``. Closing it detaches the transport
(``transport.client = None``) and closing each channel drops the channel's redis-py connection pools.
Messages delivered on that channel are still held by running tasks, though; when such a task ends,
its ack (or a reject with requeue, or the restore of unacked messages) reaches the old channel, which
rebuilds a pool from ``self.connection.client.hostname`` (``Channel._connparams``; the Sentinel
channel also reads ``client.alt``). The client is None by then, so the ack raises
``AttributeError: 'NoneType' object has no attribute 'hostname'``. That is not one of the
transport's connection errors, so neither kombu's ``ack_log_error`` nor Celery's consumer loop
handles it: it escapes the worker's event loop and the worker exits ("Unrecoverable error").

The workaround is the smallest that restores the documented behaviour: a channel whose transport
was detached raises ``redis.ConnectionError`` instead, which kombu logs ("Couldn't ack ...") and
Celery treats as a lost connection (reconnect, keep the process). The message stays in kombu's
unacked set and comes back after the visibility timeout, where the session's lease makes it a
duplicate; the session itself never depended on the message: the reaper re-queues it from the
store (see ``farm.sessions.reaper``).

Celery selects these classes through ``broker_transport`` (``tasks.app.celery_config``).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


def _require_attached(channel: Any) -> None:
    if channel.connection is None or channel.connection.client is None:
        raise redis.ConnectionError("the broker connection of this channel was closed")


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; a detached channel raises a connection error (module docstring)."""

    def _connparams(self, asynchronous: bool = False) -> Any:
        _require_attached(self)
        return super()._connparams(asynchronous)


class SentinelChannel(kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with the same guard."""

    def _connparams(self, asynchronous: bool = False) -> Any:
        _require_attached(self)
        return super()._connparams(asynchronous)


class RedisTransport(kombu_redis.Transport):
    """``redis://`` broker URLs."""

    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    """``sentinel://`` broker URLs (``broker_transport_options['master_name']`` names the master)."""

    Channel = SentinelChannel


REDIS_TRANSPORT = f"{__name__}:RedisTransport"
SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"
