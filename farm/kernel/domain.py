"""Domain objects: sessions and their state machine, agents, models.

The state machine is explicit: one comment per state, a transitions table, illegal moves refused by
``check_transition`` (used by every SessionStore implementation).
"""

from __future__ import annotations

import enum
import time

from pydantic import BaseModel, ConfigDict, Field

from farm.kernel import names
from farm.kernel.characters import BuildOptions
from farm.kernel.errors import IllegalTransition


class ModelKind(enum.StrEnum):
    """Which engine renders a session; equals the Celery queue name."""

    ESSENCE = "essence"
    EXPRESSION = "expression"


class SessionState(enum.StrEnum):
    QUEUED = "QUEUED"  # accepted by the API, waiting in a Celery queue for a warm worker
    ASSIGNED = "ASSIGNED"  # a worker claimed it under a lease (fencing token issued)
    STARTING = "STARTING"  # the worker loads the avatar and opens its sink (file or room)
    STREAMING = "STREAMING"  # frames are being rendered and published
    ENDING = "ENDING"  # input finished or stop requested; flushing and closing the sink
    ENDED = "ENDED"  # terminal: finished cleanly, outputs complete
    FAILED = "FAILED"  # terminal: failed; ``Session.failure`` says why


LIVE_STATES = frozenset(
    {
        SessionState.QUEUED,
        SessionState.ASSIGNED,
        SessionState.STARTING,
        SessionState.STREAMING,
        SessionState.ENDING,
    }
)
TERMINAL_STATES = frozenset({SessionState.ENDED, SessionState.FAILED})

TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.QUEUED: frozenset({SessionState.ASSIGNED, SessionState.ENDED, SessionState.FAILED}),
    # ASSIGNED/STARTING/STREAMING → QUEUED: the reaper re-queues a session whose lease expired.
    SessionState.ASSIGNED: frozenset({SessionState.STARTING, SessionState.QUEUED, SessionState.FAILED}),
    SessionState.STARTING: frozenset(
        {SessionState.STREAMING, SessionState.ENDING, SessionState.QUEUED, SessionState.FAILED}
    ),
    SessionState.STREAMING: frozenset({SessionState.ENDING, SessionState.QUEUED, SessionState.FAILED}),
    SessionState.ENDING: frozenset({SessionState.ENDED, SessionState.FAILED}),
    SessionState.ENDED: frozenset(),
    SessionState.FAILED: frozenset(),
}


def check_transition(current: SessionState, target: SessionState) -> None:
    """Raise IllegalTransition unless ``current → target`` is in TRANSITIONS."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a session in state {current} cannot move to {target}")


class StateChange(BaseModel):
    state: SessionState
    at: float
    reason: str | None = None
    worker_id: str | None = None


class RoomJoin(BaseModel):
    """How a room session's avatar joins LiveKit, parsed once by the API (``farm.infra.livekit_tokens``):
    the worker connects with it and never decodes the caller's token again.

    ``token`` None: the worker mints one with the farm's own LiveKit key (farm-started rooms, the
    studio); ``url`` None: the farm's ``livekit_url``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    room: str
    url: str | None = None
    token: str | None = None
    identity: str = names.DEFAULT_AVATAR_IDENTITY  # the avatar participant's identity
    agent_identity: str | None = None  # lk.publish_on_behalf: the only participant we take audio from
    agent_id: str | None = None  # the avatar id the caller's token names (attribute agent_id), if any


class Session(BaseModel):
    """The truth about a session; lives in the SessionStore, not in the broker."""

    id: str
    tenant: str
    model: ModelKind  # the queue (worker pool) that runs it
    engine: str | None = None  # the engine that renders it (farm.kernel.models); None: the queue's own
    model_name: str | None = None  # the public model name the caller asked for (e.g. "essence-2")
    state: SessionState = SessionState.QUEUED
    avatar_id: str | None = None
    image_ref: str | None = None  # blob path of an uploaded face image (expression / ad-hoc)
    audio_ref: str | None = None  # blob path of the uploaded speech (file-input sessions)
    output: str | None = None  # where the sink wrote (MP4 path) or "livekit://room/identity"
    livekit: RoomJoin | None = None  # room sessions: how the avatar joins (None: an MP4 render)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    worker_id: str | None = None
    routed_to: str | None = None  # warm routing: the worker whose private queue got it (None: shared)
    attempts: int = 0  # claims so far (re-queues after a lost lease count)
    failure: dict[str, str] | None = None  # {"code", "message"} when FAILED
    history: list[StateChange] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)  # breakdown for benchmarks

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def engine_name(self) -> str:
        """The engine that renders this session (records from before the model table: the queue's)."""
        return self.engine or self.model.value


class AgentStatus(enum.StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class Agent(BaseModel):
    """A registered avatar (agent code) and the state of its Essence pack build."""

    id: str
    tenant: str
    status: AgentStatus = AgentStatus.PROCESSING
    name: str | None = None  # a label people give it (the studio's cards); the id stays the address
    model: str = "essence"  # the model it was registered for (its default in the studio); any may render it
    image_ref: str
    build: BuildOptions = Field(default_factory=BuildOptions)  # mode, framing, user-given points
    pack_ref: str | None = None
    gestures: list[str] = Field(default_factory=list)
    error_message: str | None = None
    build_stage: str | None = (
        None  # while processing: the pack builder's current stage (detect, mouth, clip:…)
    )
    build_progress: float = 0.0  # while processing: 0..1 as the builder reports it
    system_prompt: str | None = None  # the answering model's system turn (text in)
    voice: str | None = None  # speech synthesis voice (backend-specific name); None = settings default
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
