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
import time
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import Counter
from pydantic import ValidationError as PydanticValidationError

from farm.dynamics.base import DynamicsAck
from farm.infra.pubsub import RedisTopic
from farm.infra.redis_conn import translate_errors
from farm.kernel import names
from farm.kernel.contracts import SCHEMA_VERSION, DynamicsMessage

log = logging.getLogger(__name__)

MESSAGES = Counter(
    "farm_dynamics_messages_total",
    "Dynamics topic messages received by this process, by outcome.",
    ["outcome"],  # routed | malformed | handler_error
)
RESUBSCRIBES = Counter("farm_dynamics_resubscribes_total", "Dynamics subscriptions re-established.")


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


class RedisDynamicsBus(RedisTopic[DynamicsMessage, DynamicsAck]):
    """DynamicsBus on a Redis-protocol server at ``url``; ``worker_id`` names this process in acks.

    The subscriber machinery (thread, resubscribe with capped backoff) is ``farm.infra.pubsub.RedisTopic``;
    this class adds the acks, the counters and their logs.
    """

    def __init__(
        self,
        url: str,
        *,
        worker_id: str = "api",
        max_backoff_s: float = 2.0,
        health_check_interval_s: int = 10,
    ) -> None:
        super().__init__(
            url,
            names.DYNAMICS_TOPIC,
            DynamicsMessage,
            max_backoff_s=max_backoff_s,
            health_check_interval_s=health_check_interval_s,
            client_name=f"farm-dynamics-{worker_id}",
        )
        self.worker_id = worker_id
        self.stats = SubscriberStats()

    # ------------------------------------------------------------ publisher side
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

    # ------------------------------------------------------------ subscriber side (RedisTopic hooks)
    def _on_lost(self, exc: Exception, backoff_s: float) -> None:
        self.stats.connection_losses += 1
        log.warning(
            "dynamics subscription lost; resubscribing",
            extra={"worker_id": self.worker_id, "error": type(exc).__name__, "backoff_s": backoff_s},
        )

    def _on_subscribed(self) -> None:
        self.stats.subscriptions += 1
        if self.stats.subscriptions > 1:
            RESUBSCRIBES.inc()
            log.warning("dynamics subscription re-established", extra={"worker_id": self.worker_id})
        else:
            log.info("dynamics subscription established", extra={"worker_id": self.worker_id})

    def _on_message(self, data: object) -> None:
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
