"""Speech for live room sessions: ``POST /v1/agent/{code}/speak`` → the worker holding the room.

The API synthesizes the message (the agent's voice) and publishes one ``contracts.SpeakMessage``
per live room session of that agent on ``names.SPEAK_TOPIC`` (Redis pub/sub). Every render worker
process subscribes once (``RedisSpeakBus.start(handler)``); the handler plays the speech on the local
session whose id matches and ignores the rest. Delivery is fire-and-forget, like dynamics: a worker
whose subscription is down misses the message.

A worker subscribes through its ``SpeechTopic`` middleware (``farm.worker.topics``), which plays a
message with ``WorkerRuntime.speak(session_id, *decode_speech(message))``; ``decode_speech`` gives
16-bit mono PCM and its rate, ready for the renderer's ``push_audio``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Protocol

import numpy as np

from farm.infra import media
from farm.infra.pubsub import MemoryTopic, RedisTopic
from farm.kernel import names
from farm.kernel.contracts import SpeakMessage

SpeakHandler = Callable[[SpeakMessage], None]
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


class MemorySpeakBus(MemoryTopic[SpeakMessage]):
    """In-process SpeakBus for unit tests: publish calls every started handler at once."""


class RedisSpeakBus(RedisTopic[SpeakMessage, None]):
    """SpeakBus on Redis pub/sub (``names.SPEAK_TOPIC``); the subscriber runs on its own thread and
    resubscribes on loss."""

    def __init__(self, url: str, *, max_backoff_s: float = 2.0) -> None:
        super().__init__(url, names.SPEAK_TOPIC, SpeakMessage, max_backoff_s=max_backoff_s)
