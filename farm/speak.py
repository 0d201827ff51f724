"""Speech for live room sessions: ``POST /v1/agent/{code}/speak`` → the worker holding the room.

The API synthesizes the message (the agent's voice) and publishes one ``contracts.SpeakMessage``
per live room session of that agent on ``names.SPEAK_TOPIC`` (Redis pub/sub). Every render worker
process subscribes once (``RedisSpeakBus.start(handler)``); the handler plays the speech on the local
session whose id matches and ignores the rest. Delivery is fire-and-forget, like dynamics: a worker
whose subscription is down misses the message.

Wiring a worker (for the session runtime): ``bus = RedisSpeakBus(settings.redis_url)`` then
``bus.start(lambda m: local_sessions.speak(m.session_id, decode_speech(m)))`` where
``decode_speech`` gives 16-bit mono PCM and its rate, ready for the renderer's ``push_audio``.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np
from pydantic import ValidationError as PydanticValidationError

from farm import media, names
from farm.contracts import SCHEMA_VERSION, SpeakMessage
from farm.redis_conn import TRANSIENT_ERRORS, connect, translate_errors

log = logging.getLogger(__name__)

SpeakHandler = Callable[[SpeakMessage], None]
_POLL_S = 0.25
_MAX_SPEECH_S = 600.0


def decode_speech(message: SpeakMessage) -> tuple[np.ndarray, int]:
    """The message's speech as int16 mono PCM and its sample rate."""
    return media.decode_audio(base64.b64decode(message.audio_wav_b64), max_s=_MAX_SPEECH_S)


class SpeakBus(Protocol):
    def publish(self, message: SpeakMessage) -> int:
        """Send to every subscribed worker process; how many processes it reached."""
        ...

    def start(self, handler: SpeakHandler) -> None:
        """Subscribe this process (once) and call ``handler`` for every message."""
        ...

    def close(self) -> None: ...


class MemorySpeakBus:
    """In-process SpeakBus for unit tests: publish calls every started handler at once."""

    def __init__(self) -> None:
        self.published: list[SpeakMessage] = []
        self._handlers: list[SpeakHandler] = []

    def publish(self, message: SpeakMessage) -> int:
        self.published.append(message)
        for handler in self._handlers:
            handler(message)
        return len(self._handlers)

    def start(self, handler: SpeakHandler) -> None:
        self._handlers.append(handler)

    def close(self) -> None:
        self._handlers.clear()


class RedisSpeakBus:
    """SpeakBus on Redis pub/sub; the subscriber runs on its own thread and resubscribes on loss."""

    def __init__(self, url: str, *, max_backoff_s: float = 2.0) -> None:
        self._url = url
        self._max_backoff_s = max_backoff_s
        self._client = connect(url)
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._handler: SpeakHandler | None = None

    def publish(self, message: SpeakMessage) -> int:
        with translate_errors("speak topic"):
            return int(self._client.publish(names.SPEAK_TOPIC, message.model_dump_json()))

    def start(self, handler: SpeakHandler) -> None:
        if self._thread is not None:
            raise RuntimeError("this SpeakBus already has a subscriber")
        self._handler = handler
        self._thread = threading.Thread(target=self._run, name="speak-subscriber", daemon=True)
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
        backoff_s = 0.05
        while not self._stop.is_set():
            try:
                self._listen()
                return
            except TRANSIENT_ERRORS as exc:
                self._subscribed.clear()
                log.warning("speak subscription lost; resubscribing", extra={"error": type(exc).__name__})
            if self._stop.wait(backoff_s):
                return
            backoff_s = min(backoff_s * 2, self._max_backoff_s)

    def _listen(self) -> None:
        client = connect(self._url, retries=0, health_check_interval_s=10, socket_keepalive=True)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(names.SPEAK_TOPIC)
            pubsub.get_message(timeout=_POLL_S)
            self._subscribed.set()
            while not self._stop.is_set():
                raw = pubsub.get_message(timeout=_POLL_S)
                if raw is not None and raw.get("type") == "message":
                    self._on_message(raw.get("data"))
        finally:
            pubsub.close()
            client.close()

    def _on_message(self, data: object) -> None:
        try:
            message = SpeakMessage.model_validate_json(data)  # type: ignore[arg-type]
        except (PydanticValidationError, ValueError, TypeError):
            log.warning("malformed speak message ignored")
            return
        if message.schema_version != SCHEMA_VERSION:
            log.warning("speak message of an unknown schema version ignored")
            return
        assert self._handler is not None
        try:
            self._handler(message)
        except Exception:
            log.exception("speak handler failed", extra={"session_id": message.session_id})
