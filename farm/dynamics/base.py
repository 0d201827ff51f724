"""The dynamics seam: how gesture triggers travel from the API (or a keyword rule) to live sessions.

A trigger is a ``contracts.DynamicsMessage`` published on ``names.DYNAMICS_TOPIC``. Every worker
process subscribes once (``DynamicsBus.start``) and hands each message to its ``LocalSessions``
registry (``farm.dynamics.router``), which plays it on the matching local sessions and answers with
one ``DynamicsAck`` per process. The publisher may wait briefly for those acks to report how many
sessions accepted the trigger.

Delivery is **fire-and-forget**: pub/sub keeps nothing for a subscriber that is reconnecting, so a
trigger published while a worker's subscription is down is lost for that worker. The accepted count
is best effort: a worker that replies after the publisher stopped waiting is not counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from farm.kernel.contracts import DynamicsMessage, Versioned

SERVICE_NAME = "avatar-farm"
"""The ``service`` field of trigger_dynamics RPC replies (bitHuman answers ``bithuman-serve``)."""

Reason = Literal["debounced", "duplicate", "unknown_gesture", "session_closed", "delivery_failed"]
"""Why a trigger did not start an animation."""


@dataclass(frozen=True, slots=True)
class TriggerResult:
    """What one session did with one trigger (the RPC reply and the topic ack carry it)."""

    action: str
    animation_triggered: bool
    session_id: str | None = None
    reason: Reason | None = None

    @property
    def animation_debounced(self) -> bool:
        """True when a cooldown or the message-id dedup window swallowed the trigger."""
        return self.reason in ("debounced", "duplicate")

    def rpc_payload(self) -> str:
        """The JSON reply of the ``trigger_dynamics`` RPC, in bitHuman's shape plus ``reason``."""
        body: dict[str, object] = {
            "action": self.action,
            "animation_triggered": self.animation_triggered,
            "animation_debounced": self.animation_debounced,
            "service": SERVICE_NAME,
            "status": "success",
        }
        if self.reason is not None:
            body["reason"] = self.reason
        return json.dumps(body)


class SessionOutcome(BaseModel):
    """One session's answer inside a DynamicsAck."""

    session_id: str
    animation_triggered: bool
    reason: str | None = None


class DynamicsAck(Versioned):
    """Render worker process → publisher of a DynamicsMessage (Redis LIST ``names.dynamics_ack_key``).

    Every process that receives a message pushes exactly one ack, even when none of its sessions
    matched, so the publisher can stop waiting as soon as every reached subscriber has answered.
    """

    message_id: str
    worker_id: str
    sessions: list[SessionOutcome] = Field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(1 for s in self.sessions if s.animation_triggered)


@dataclass(frozen=True, slots=True)
class BroadcastSummary:
    """What the publisher learned about one trigger within its short wait."""

    message_id: str
    workers_reached: int  # subscribers PUBLISH reached (worker processes)
    workers_replied: int
    sessions_matched: int
    sessions_accepted: int
    acks: list[DynamicsAck] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every reached worker answered before the deadline (the count is exact)."""
        return self.workers_replied >= self.workers_reached

    def body(self) -> dict[str, object]:
        """The public part of the summary (HTTP responses)."""
        return {
            "message_id": self.message_id,
            "sessions_accepted": self.sessions_accepted,
            "sessions_matched": self.sessions_matched,
            "workers_reached": self.workers_reached,
            "workers_replied": self.workers_replied,
            "count_complete": self.complete,
        }


MessageHandler = Callable[[DynamicsMessage], DynamicsAck]
"""What a subscribed process does with a message: route it locally and say what happened."""


class DynamicsBus(Protocol):
    """Fan-out of gesture triggers to every worker process (Redis pub/sub, or in memory for tests)."""

    def publish(self, message: DynamicsMessage) -> int:
        """Send ``message`` to every subscribed process; return how many subscribers it reached."""
        ...

    def collect_acks(self, message_id: str, expected: int, wait_s: float) -> list[DynamicsAck]:
        """Wait up to ``wait_s`` for ``expected`` acks of ``message_id``; return those that came."""
        ...

    def start(self, handler: MessageHandler) -> None:
        """Subscribe this process (once) and hand every valid message to ``handler``."""
        ...

    def close(self) -> None:
        """Unsubscribe and release connections; idempotent."""
        ...


def broadcast(bus: DynamicsBus, message: DynamicsMessage, *, wait_s: float = 0.1) -> BroadcastSummary:
    """Publish ``message`` and wait briefly for the reached workers' acks (best-effort count)."""
    reached = bus.publish(message)
    acks = bus.collect_acks(message.message_id, reached, wait_s) if reached else []
    return BroadcastSummary(
        message_id=message.message_id,
        workers_reached=reached,
        workers_replied=len(acks),
        sessions_matched=sum(len(a.sessions) for a in acks),
        sessions_accepted=sum(a.accepted for a in acks),
        acks=acks,
    )
