"""Typed, versioned messages that cross a process or network boundary.

Each docstring says who sends the message to whom. Bump ``schema_version`` on an incompatible change;
receivers refuse versions they do not know.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from farm.domain import ModelKind

SCHEMA_VERSION = 1


class Versioned(BaseModel):
    schema_version: int = SCHEMA_VERSION


class RunSessionMessage(Versioned):
    """API (tasks.producer) → render worker (Celery task ``farm.session.run``): run this session.

    The session itself lives in the SessionStore; the message only names it, so a redelivery or a
    re-queue by the reaper carries no stale state.
    """

    session_id: str
    model: ModelKind
    enqueued_at: float = Field(default_factory=time.time)
    worker_id: str | None = None  # warm routing: sent to this worker's private queue (None: shared queue)


class BuildAgentMessage(Versioned):
    """API → build worker (Celery task ``farm.agent.build``): build the Essence pack of this agent."""

    agent_id: str
    enqueued_at: float = Field(default_factory=time.time)


WorkerState = Literal["STARTING", "READY", "ERROR", "DRAINING"]


class WorkerInfo(Versioned):
    """Render worker → worker registry (Redis), read by ``GET /v1/fleet`` and the warm router."""

    worker_id: str
    hostname: str
    pid: int
    queues: list[str]
    state: WorkerState
    capacity: int
    active_sessions: int = 0
    prewarm_s: float | None = None
    models: list[str] = Field(default_factory=list)
    backend: str | None = None  # e.g. "numpy", "torch-cpu", "torch-cuda-compiled", "tensorrt"
    hot_avatars: list[str] = Field(default_factory=list)
    cached_avatars: list[str] = Field(default_factory=list)  # avatar keys in the LRU (warm routing)
    warm_queue: str | None = None  # names.worker_queue(worker_id) once it consumes it, else None
    avatar_hits: int = 0
    avatar_misses: int = 0
    error: str | None = None
    started_at: float = Field(default_factory=time.time)
    ready_at: float | None = None  # when it became READY (it consumes nothing before)
    heartbeat_at: float = Field(default_factory=time.time)

    @property
    def free_slots(self) -> int:
        return max(0, self.capacity - self.active_sessions) if self.state == "READY" else 0


class SpeakMessage(Versioned):
    """API (``POST /v1/agent/{code}/speak``) → every render worker (Redis pub/sub ``farm:speak``).

    Fire-and-forget: the worker holding the live room session ``session_id`` plays ``audio_wav_b64``
    (a WAV of ``text``, already synthesized in the agent's voice) as the avatar's next utterance;
    every other worker ignores it.
    """

    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    tenant: str
    agent_id: str
    session_id: str
    text: str
    audio_wav_b64: str
    sent_at: float = Field(default_factory=time.time)


class DynamicsMessage(Versioned):
    """API or a session (keyword rule) → every render worker (Redis pub/sub ``farm:dynamics``).

    Fire-and-forget: a worker routes it to its local sessions matching ``session_id`` or ``agent_id``.
    """

    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    tenant: str
    action: str
    agent_id: str | None = None
    session_id: str | None = None
    sent_at: float = Field(default_factory=time.time)
