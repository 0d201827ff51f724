"""DynamicsBus over Redis pub/sub: one subscription per worker process, on its own thread.

Publishing is one ``PUBLISH names.DYNAMICS_TOPIC`` (the reply is how many subscribers it reached).
Each subscribed process routes a message locally and pushes one ``DynamicsAck`` on
``names.dynamics_ack_key(message_id)`` (a LIST with a short TTL); the publisher ``BLPOP``s those for a
moment to learn how many sessions accepted the trigger.

The subscriber thread owns a dedicated connection with no automatic retry, so that a dropped
connection (server restart, ``CLIENT KILL``, network) surfaces here: it is logged, counted, and the
thread resubscribes with a capped backoff. Messages published meanwhile are lost for this process
(fire-and-forget). A message that is not a valid DynamicsMessage of a known schema version is logged
(without its content), counted and ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import Counter
from pydantic import ValidationError as PydanticValidationError

from farm import names
from farm.contracts import SCHEMA_VERSION, DynamicsMessage
from farm.dynamics.base import DynamicsAck, MessageHandler
from farm.redis_conn import TRANSIENT_ERRORS, connect, translate_errors

log = logging.getLogger(__name__)

MESSAGES = Counter(
    "farm_dynamics_messages_total",
    "Dynamics topic messages received by this process, by outcome.",
    ["outcome"],  # routed | malformed | handler_error
)
RESUBSCRIBES = Counter("farm_dynamics_resubscribes_total", "Dynamics subscriptions re-established.")

# Every transient error, including a failover's (a demoted primary answers READONLY, the sentinels
# may know no primary for a moment): the subscriber waits it out and resubscribes.
_CONNECTION_ERRORS = TRANSIENT_ERRORS
_POLL_S = 0.25


@dataclass
class SubscriberStats:
    """Counters of one process's subscriber (also exported to Prometheus)."""

    received: int = 0
    routed: int = 0
    malformed: int = 0
    handler_errors: int = 0
    ack_errors: int = 0
    connection_losses: int = 0
    subscriptions: int = 0  # successful SUBSCRIBEs: 1 + resubscribes


def decode_message(data: Any) -> DynamicsMessage | None:
    """The DynamicsMessage in a pub/sub payload, or None when malformed or of an unknown version."""
    try:
        message = DynamicsMessage.model_validate_json(data)
    except (PydanticValidationError, ValueError, TypeError):
        return None
    if message.schema_version != SCHEMA_VERSION:
        return None
    return message


class RedisDynamicsBus:
    """DynamicsBus on a Redis-protocol server at ``url``; ``worker_id`` names this process in acks."""

    def __init__(
        self,
        url: str,
        *,
        worker_id: str = "api",
        max_backoff_s: float = 2.0,
        health_check_interval_s: int = 10,
    ) -> None:
        self._url = url
        self.worker_id = worker_id
        self._max_backoff_s = max_backoff_s
        self._health_check_interval_s = health_check_interval_s
        self._client = connect(url)
        self._handler: MessageHandler | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._pubsub_client: redis.Redis | None = None
        self.stats = SubscriberStats()

    # ------------------------------------------------------------ publisher side
    def publish(self, message: DynamicsMessage) -> int:
        with translate_errors("dynamics topic"):
            return int(self._client.publish(names.DYNAMICS_TOPIC, message.model_dump_json()))

    def collect_acks(self, message_id: str, expected: int, wait_s: float) -> list[DynamicsAck]:
        """BLPOP up to ``expected`` acks within ``wait_s`` (fractional BLPOP timeouts, Redis ≥ 6)."""
        key = names.dynamics_ack_key(message_id)
        deadline = time.monotonic() + wait_s
        acks: list[DynamicsAck] = []
        with translate_errors("dynamics acks"):
            while len(acks) < expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                popped = self._client.blpop([key], timeout=max(remaining, 0.001))
                if popped is None:
                    break
                try:
                    acks.append(DynamicsAck.model_validate_json(popped[1]))
                except PydanticValidationError:
                    log.warning("malformed dynamics ack ignored", extra={"message_id": message_id})
        return acks

    # ------------------------------------------------------------ subscriber side
    def start(self, handler: MessageHandler) -> None:
        """Start this process's subscriber thread (once; a second call is refused)."""
        if self._thread is not None:
            raise RuntimeError("this DynamicsBus already has a subscriber")
        self._handler = handler
        self._thread = threading.Thread(target=self._run, name="dynamics-subscriber", daemon=True)
        self._thread.start()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """True once the subscription is (re-)established; for readiness checks and tests."""
        return self._subscribed.wait(timeout_s)

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=_POLL_S * 3)
        self._client.close()

    def _run(self) -> None:
        backoff_s = 0.05
        while not self._stop.is_set():
            try:
                self._listen()
                return  # stopped
            except _CONNECTION_ERRORS as exc:
                self._subscribed.clear()
                self.stats.connection_losses += 1
                log.warning(
                    "dynamics subscription lost; resubscribing",
                    extra={"worker_id": self.worker_id, "error": type(exc).__name__, "backoff_s": backoff_s},
                )
            if self._stop.wait(backoff_s):
                return
            backoff_s = min(backoff_s * 2, self._max_backoff_s)

    def _listen(self) -> None:
        client = connect(
            self._url,
            retries=0,
            health_check_interval_s=self._health_check_interval_s,
            socket_keepalive=True,
            client_name=f"farm-dynamics-{self.worker_id}",
        )
        self._pubsub_client = client
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(names.DYNAMICS_TOPIC)
            pubsub.get_message(timeout=_POLL_S)  # the subscribe confirmation: we are live from here
            self._on_subscribed()
            while not self._stop.is_set():
                raw = pubsub.get_message(timeout=_POLL_S)
                if raw is not None and raw.get("type") == "message":
                    self._on_message(raw.get("data"))
        finally:
            pubsub.close()
            client.close()

    def _on_subscribed(self) -> None:
        self.stats.subscriptions += 1
        if self.stats.subscriptions > 1:
            RESUBSCRIBES.inc()
            log.warning("dynamics subscription re-established", extra={"worker_id": self.worker_id})
        else:
            log.info("dynamics subscription established", extra={"worker_id": self.worker_id})
        self._subscribed.set()

    def _on_message(self, data: Any) -> None:
        self.stats.received += 1
        message = decode_message(data)
        if message is None:
            self.stats.malformed += 1
            MESSAGES.labels("malformed").inc()
            size = len(data) if isinstance(data, str | bytes) else -1
            log.warning(
                "malformed dynamics message ignored", extra={"worker_id": self.worker_id, "size": size}
            )
            return
        assert self._handler is not None
        try:
            ack = self._handler(message)
        except Exception:
            self.stats.handler_errors += 1
            MESSAGES.labels("handler_error").inc()
            log.exception("dynamics handler failed", extra={"message_id": message.message_id})
            return
        self.stats.routed += 1
        MESSAGES.labels("routed").inc()
        self._push_ack(ack)

    def _push_ack(self, ack: DynamicsAck) -> None:
        key = names.dynamics_ack_key(ack.message_id)
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.rpush(key, ack.model_dump_json())
            pipe.expire(key, names.DYNAMICS_ACK_TTL_S)
            pipe.execute()
        except redis.RedisError:
            self.stats.ack_errors += 1
            log.warning("dynamics ack not pushed", extra={"message_id": ack.message_id})
