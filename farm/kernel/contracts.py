"""Typed, versioned messages that cross a process or network boundary.

Each docstring says who sends the message to whom. Bump ``schema_version`` on an incompatible change;
receivers refuse versions they do not know.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from farm.kernel.characters import BuildOptions
from farm.kernel.domain import ModelKind, Session

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


class PreviewFaceMessage(Versioned):
    """API → build worker (Celery task ``farm.agent.preview``, queue ``build``): find the face and the
    framing of the photo of preview ``preview_id`` (its record, a ``FacePreview``, names the image)."""

    preview_id: str
    enqueued_at: float = Field(default_factory=time.time)


PreviewStatus = Literal["pending", "ready", "failed"]


class FacePreview(Versioned):
    """A photo's face and framing before an agent is built: written ``pending`` by the API, finished by
    the build worker (``farm.sessions.preview``), read back by the API (Redis ``names.preview_key``).

    Coordinates are pixels of the uploaded image. ``face_box`` and ``points`` (68 iBUG landmarks) are
    the detected face (person mode) or the skeleton around the given mouth (animal mode); ``crop_box``
    is what the agent's frame will show; ``mouth_px`` the mouth's width in the output frame. A
    ``failed`` preview carries the error a build would fail with (``NO_FACE_FOUND``,
    ``MOUTH_TOO_SMALL``, ...), so the studio says it before anything is built or charged.
    """

    preview_id: str
    tenant: str
    image_ref: str
    options: BuildOptions = Field(default_factory=BuildOptions)
    status: PreviewStatus = "pending"
    created_at: float = Field(default_factory=time.time)
    width: int = 0
    height: int = 0
    face_box: tuple[float, float, float, float] | None = None
    points: list[tuple[float, float]] = Field(default_factory=list)
    crop_box: tuple[float, float, float, float] | None = None
    output_size: tuple[int, int] | None = None
    mouth_px: float | None = None
    method: str | None = None  # which detector found the face
    error_code: str | None = None
    error_message: str | None = None


SessionTaskStatus = Literal[
    "ENDED", "FAILED", "QUEUED", "lease_lost", "stalled", "handed_back", "duplicate", "missing", "no_slot"
]


class SessionTaskResult(Versioned):
    """Render worker (task ``farm.session.run``) → result backend: how one delivery of a session ended.

    ``status`` is the session's state when the worker let go of it (``ENDED``, ``FAILED``), or why it
    did not run it to the end (``lease_lost``, ``stalled``, ``handed_back``, ``duplicate``, ``missing``,
    ``no_slot``). The session's truth stays in the SessionStore; this is for Flower and benchmarks.
    """

    session_id: str
    status: SessionTaskStatus
    frames: int = 0

    @classmethod
    def from_run(cls, session_id: str, result: RunOutcome) -> SessionTaskResult:
        if result.handed_back:
            status: SessionTaskStatus = "handed_back"
        elif result.stalled:
            status = "stalled"
        elif result.session is None:
            status = "lease_lost"
        else:
            status = "FAILED" if result.session.state.value == "FAILED" else "ENDED"
        return cls(session_id=session_id, status=status, frames=result.frames)


class BuildTaskResult(Versioned):
    """Build worker (task ``farm.agent.build``) → result backend: how one agent build ended."""

    agent_id: str
    status: Literal["ready", "failed", "missing"]
    pack_ref: str | None = None
    code: str | None = None


class RunOutcome(Protocol):
    """What ``SessionTaskResult.from_run`` reads of a runner's result (``farm.sessions.runner.RunResult``)."""

    @property
    def session(self) -> Session | None: ...
    @property
    def frames(self) -> int: ...
    @property
    def handed_back(self) -> bool: ...
    @property
    def stalled(self) -> bool: ...


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
    frames_rendered: int = 0  # frames handed to sinks (room and file sessions) since the process started
    late_frames: int = 0  # of those, shown without a new picture (skipped to keep the voice real time)
    admissible: int | None = None  # sessions it takes now: its measured cost may leave fewer than its slots
    heartbeat_at: float = Field(default_factory=time.time)

    @property
    def free_slots(self) -> int:
        """Sessions this worker would take now (0 unless READY)."""
        if self.state != "READY":
            return 0
        free = max(0, self.capacity - self.active_sessions)
        return free if self.admissible is None else min(free, max(0, self.admissible))


class StopMessage(Versioned):
    """API (the session store's ``request_stop``) → every render worker (Redis pub/sub ``farm:stop``).

    A notice, not the truth: the durable stop flag (``names.session_stop_key``) is set in the same
    transaction and is read with every lease renewal, so a worker that misses the notice still stops.
    The worker holding session ``session_id`` stops it at its next frame; every other worker ignores it.
    """

    session_id: str


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
