"""In-memory DynamicsBus for unit tests: every ``start`` is one simulated worker process.

``publish`` hands the message to every subscribed handler synchronously, on the caller's thread,
and keeps their acks for ``collect_acks``. A test tool only; production uses RedisDynamicsBus.
"""

from __future__ import annotations

import threading

from farm.dynamics.base import DynamicsAck, MessageHandler
from farm.kernel.contracts import DynamicsMessage


class MemoryDynamicsBus:
    """A DynamicsBus whose subscribers are handlers in this process."""

    def __init__(self) -> None:
        self._handlers: list[MessageHandler] = []
        self._acks: dict[str, list[DynamicsAck]] = {}
        self._lock = threading.Lock()
        self.published: list[DynamicsMessage] = []

    def publish(self, message: DynamicsMessage) -> int:
        with self._lock:
            handlers = list(self._handlers)
            self.published.append(message)
        acks = [handler(message) for handler in handlers]
        with self._lock:
            self._acks.setdefault(message.message_id, []).extend(acks)
        return len(handlers)

    def collect_acks(self, message_id: str, expected: int, wait_s: float) -> list[DynamicsAck]:
        with self._lock:
            acks = self._acks.pop(message_id, [])
        return acks[:expected]

    def start(self, handler: MessageHandler) -> None:
        with self._lock:
            self._handlers.append(handler)

    def close(self) -> None:
        with self._lock:
            self._handlers.clear()
