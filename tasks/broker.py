"""The farm's kombu transports: kombu's Redis and Sentinel transports with one defect worked around.

The defect (kombu 5.7.0, ``kombu/transport/redis.py``): a channel builds its redis-py connection
pool lazily, from its transport's kombu ``Connection`` (``Channel._connparams`` reads
``self.connection.client.hostname``; the Sentinel channel also reads ``client.alt``). When the broker
connection breaks, Celery's consumer closes that ``Connection``, which detaches the transport
(``transport.client = None``) and drops each channel's pools. Messages delivered on such a channel
are still held by running tasks (late acks); when one of them is acked, rejected with requeue, or
restored (the "restoring unacked messages" path), the channel rebuilds its pool from the detached
transport and raises ``AttributeError: 'NoneType' object has no attribute 'hostname'``. That is not
one of the transport's connection errors, so neither kombu's ``ack_log_error`` nor Celery's consumer
loop handles it: raised in the worker's event loop it ends the worker ("Unrecoverable error").

The workaround is the smallest that restores the documented behaviour: a channel whose transport was
detached raises ``redis.ConnectionError`` instead, which kombu logs ("Couldn't ack ...") and Celery
treats as a lost connection (reconnect, keep the process). The message stays in kombu's unacked set
and comes back after the visibility timeout, where the session's lease makes it a duplicate; the
session itself never depended on the message: once its lease lapses the reaper re-queues it from
the store (``farm.sessions.reaper``).

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
