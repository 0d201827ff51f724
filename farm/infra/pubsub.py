"""Typed fire-and-forget topics on Redis pub/sub: the API publishes, every worker process listens.

``RedisTopic(url, channel, model)`` publishes ``model`` messages (JSON) and runs one subscriber
thread per process that validates each message, drops other schema versions, and calls a handler.
The subscriber resubscribes with backoff after any transient error (a restart, a failover), so a
worker never needs a restart to hear a topic again; messages sent while it was away are missed,
which every topic's users allow for (a durable state elsewhere is the truth). ``MemoryTopic`` is
the in-process twin for unit tests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from pydantic import ValidationError as PydanticValidationError

from farm.infra.backoff import Backoff
from farm.infra.redis_conn import TRANSIENT_ERRORS, connect, translate_errors
from farm.kernel.contracts import SCHEMA_VERSION, Versioned

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Versioned)
R = TypeVar("R")  # what a subscriber's handler returns (None; dynamics: its ack)
_POLL_S = 0.25


class MemoryTopic(Generic[M]):
    """In-process topic for unit tests: publish calls every started handler at once."""

    def __init__(self) -> None:
        self.published: list[M] = []
        self._handlers: list[Callable[[M], object]] = []

    def publish(self, message: M) -> int:
        self.published.append(message)
        for handler in self._handlers:
            handler(message)
        return len(self._handlers)

    def start(self, handler: Callable[[M], object]) -> None:
        self._handlers.append(handler)

    def close(self) -> None:
        self._handlers.clear()


class RedisTopic(Generic[M, R]):
    """One pub/sub channel of ``model`` messages; the subscriber runs on its own thread and calls a
    handler returning ``R``."""

    def __init__(
        self,
        url: str,
        channel: str,
        model: type[M],
        *,
        max_backoff_s: float = 2.0,
        health_check_interval_s: int = 10,
        client_name: str | None = None,
    ) -> None:
        self._url = url
        self._channel = channel
        self._model = model
        self._max_backoff_s = max_backoff_s
        self._health_check_interval_s = health_check_interval_s
        self._client_name = client_name
        self._client = connect(url)
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._handler: Callable[[M], R] | None = None

    def publish(self, message: M) -> int:
        """Send to every subscribed process; how many processes it reached."""
        with translate_errors(f"{self._channel} topic"):
            return int(self._client.publish(self._channel, message.model_dump_json()))

    def start(self, handler: Callable[[M], R]) -> None:
        """Subscribe this process (once) and call ``handler`` for every message, on the topic's thread."""
        if self._thread is not None:
            raise RuntimeError(f"the {self._channel} topic already has a subscriber here")
        self._handler = handler
        self._thread = threading.Thread(target=self._run, name=f"{self._channel}-subscriber", daemon=True)
        self._thread.start()

    def wait_subscribed(self, timeout_s: float) -> bool:
        return self._subscribed.wait(timeout_s)

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=_POLL_S * 3)
        self._client.close()

    def _run(self) -> None:
        backoff = Backoff(first_s=0.05, max_s=self._max_backoff_s)
        while not self._stop.is_set():
            delay_s = 0.0
            try:
                self._listen()
                return
            except TRANSIENT_ERRORS as exc:
                self._subscribed.clear()
                delay_s = backoff.next_s()
                self._on_lost(exc, delay_s)
            if self._stop.wait(delay_s):
                return

    def _listen(self) -> None:
        client = connect(
            self._url,
            retries=0,  # a dropped connection surfaces here, to be counted and resubscribed
            health_check_interval_s=self._health_check_interval_s,
            socket_keepalive=True,
            client_name=self._client_name,
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self._channel)
            pubsub.get_message(timeout=_POLL_S)  # the subscribe confirmation: live from here
            self._on_subscribed()
            self._subscribed.set()
            while not self._stop.is_set():
                raw = pubsub.get_message(timeout=_POLL_S)
                if raw is not None and raw.get("type") == "message":
                    self._on_message(raw.get("data"))
        finally:
            pubsub.close()
            client.close()

    # ------------------------------------------------------------ hooks (a topic with stats overrides them)
    def _on_subscribed(self) -> None:
        """The subscription is (re-)established."""

    def _on_lost(self, exc: Exception, backoff_s: float) -> None:
        """The subscription dropped; it is retried after ``backoff_s``."""
        log.warning(
            "topic subscription lost; resubscribing",
            extra={"topic": self._channel, "error": type(exc).__name__},
        )

    def _on_message(self, data: object) -> None:
        """Validate one payload and hand it to the handler (malformed or foreign versions: logged)."""
        try:
            message = self._model.model_validate_json(data)  # type: ignore[arg-type]
        except (PydanticValidationError, ValueError, TypeError):
            log.warning("malformed message ignored", extra={"topic": self._channel})
            return
        if message.schema_version != SCHEMA_VERSION:
            log.warning("message of an unknown schema version ignored", extra={"topic": self._channel})
            return
        assert self._handler is not None
        try:
            self._handler(message)
        except Exception:
            log.exception("topic handler failed", extra={"topic": self._channel})
