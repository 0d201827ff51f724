"""Request and response bodies of the HTTP API (also the OpenAPI schema).

Media arrive either base64-encoded in JSON or as multipart files; both become ``SessionRequest`` /
``AgentRequest`` (raw bytes) in ``farm.api.inputs`` before the core sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from farm.characters import BuildOptions
from farm.domain import Agent, ModelKind, Session, SessionState, StateChange

AGENT_ID_FIELD = Field(
    None, description="Agent code of a READY agent of yours, e.g. A78WKV4515 (^[A-Z][A-Z0-9]{9}$)."
)


class CreateSessionJson(BaseModel):
    """``POST /v1/sessions`` as JSON. Exactly one of ``avatar_id`` and ``avatar_image``."""

    model_config = ConfigDict(extra="forbid")

    avatar_id: str | None = AGENT_ID_FIELD
    avatar_image: str | None = Field(None, description="Base64 PNG/JPEG of a face (no build step).")
    model: ModelKind = Field(ModelKind.ESSENCE, description="Which engine renders the session.")
    audio: str = Field(..., description="Base64 speech clip (WAV, MP3, OGG/Opus, FLAC, M4A).")


class CreateAgentJson(BuildOptions):
    """``POST /v1/agents`` as JSON: the image plus the build options (``mode``, ``framing``, points).

    ``mode: "animal"`` needs ``mouth_box`` or ``mouth_points`` (pixels of the image); ``model:
    "expression"`` refuses animal mode (MODE_NOT_SUPPORTED). See docs/characters.md.
    """

    image: str = Field(
        ..., description="Base64 PNG/JPEG portrait; its Essence pack is built on queue `build`."
    )
    model: ModelKind = Field(
        default=ModelKind.ESSENCE,
        description="The model the agent is for; 'expression' has no animal mode (MODE_NOT_SUPPORTED).",
    )

    def options(self) -> BuildOptions:
        """The build options alone (what is stored on the agent)."""
        return BuildOptions.model_validate(self.model_dump(exclude={"image", "model"}))


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """A decoded agent registration (JSON or multipart), before validation of its image."""

    image: bytes
    options: BuildOptions
    model: ModelKind = ModelKind.ESSENCE


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """A decoded session request (JSON or multipart), before validation of its media."""

    model: ModelKind
    audio: bytes
    audio_suffix: str
    avatar_id: str | None = None
    avatar_image: bytes | None = None


class SessionCreated(BaseModel):
    session_id: str
    status: SessionState
    status_url: str


class SessionView(BaseModel):
    """A session as its owner sees it."""

    session_id: str
    status: SessionState
    model: ModelKind
    avatar_id: str | None
    output: str | None
    worker_id: str | None
    routed_to: str | None = None  # warm routing: the worker picked at submit (None: shared queue)
    attempts: int
    failure: dict[str, str] | None
    created_at: float
    updated_at: float
    history: list[StateChange]
    timings_ms: dict[str, float]

    @classmethod
    def of(cls, session: Session) -> SessionView:
        return cls(
            session_id=session.id,
            status=session.state,
            model=session.model,
            avatar_id=session.avatar_id,
            output=session.output,
            worker_id=session.worker_id,
            routed_to=session.routed_to,
            attempts=session.attempts,
            failure=session.failure,
            created_at=session.created_at,
            updated_at=session.updated_at,
            history=session.history,
            timings_ms=session.timings_ms,
        )


class SessionList(BaseModel):
    data: list[SessionView]
    limit: int
    offset: int


class AgentCreated(BaseModel):
    """bitHuman's shape for ``POST /v1/agent/generate``."""

    success: bool = True
    message: str = "Agent generation started"
    agent_id: str
    status: str


class AgentData(BaseModel):
    agent_id: str
    status: str
    mode: str = Field(description="'person' or 'animal'.")
    framing: str = Field(description="'face' (a crop around the face) or 'full' (the whole image).")
    progress: float
    error_message: str | None
    gestures: list[str]
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, agent: Agent) -> AgentData:
        progress = {"processing": 0.0, "ready": 1.0, "failed": 1.0}.get(agent.status.value, 0.0)
        return cls(
            agent_id=agent.id,
            status=agent.status.value,
            mode=agent.build.mode.value,
            framing=agent.build.framing.value,
            progress=progress,
            error_message=agent.error_message,
            gestures=agent.gestures,
            created_at=agent.created_at,
            updated_at=agent.updated_at,
        )


class AgentView(BaseModel):
    """bitHuman's shape for ``GET /v1/agent/status/{id}``: ``{"success": true, "data": {...}}``."""

    success: bool = True
    data: AgentData


class Pagination(BaseModel):
    limit: int
    offset: int
    total: int
    has_more: bool


class AgentList(BaseModel):
    """bitHuman's shape for ``GET /v1/agents``: ``{"success", "data": [...], "pagination"}``."""

    success: bool = True
    data: list[AgentData]
    pagination: Pagination


class ErrorBody(BaseModel):
    code: str
    message: str
    httpStatus: int  # bitHuman's field name


class ErrorEnvelope(BaseModel):
    """Every error: ``{"error": {...}, "status": "error", "status_code": N}``."""

    error: ErrorBody
    status: str = "error"
    status_code: int


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope, "description": text}
    for code, text in {
        400: (
            "Validation error (VALIDATION_ERROR, MALFORMED_JSON, INVALID_IMAGE, INVALID_AUDIO, "
            "POINTS_REQUIRED, POINTS_OUTSIDE_IMAGE, MOUTH_TOO_SMALL, MODE_NOT_SUPPORTED)"
        ),
        401: "Missing, unknown or revoked api-secret (UNAUTHORIZED)",
        404: "Not found, or owned by another tenant (NOT_FOUND)",
        409: "Conflict (AGENT_NOT_READY, CONFLICT)",
        413: "Upload over a size limit or a decompression bomb (PAYLOAD_TOO_LARGE)",
        503: "A backend is unavailable (BACKEND_UNAVAILABLE)",
    }.items()
}
