"""Request and response bodies of the HTTP API (also the OpenAPI schema).

Media arrive either base64-encoded in JSON or as multipart files; both become ``SessionRequest`` /
``AgentRequest`` (raw bytes) in ``farm.api.inputs`` before the core sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from farm.kernel.characters import BuildOptions
from farm.kernel.domain import Agent, ModelKind, Session, SessionState, StateChange

AGENT_ID_PATTERN = r"^[A-Z][A-Z0-9]{9}$"
SESSION_ID_PATTERN = r"^[0-9a-f]{32}$"
GESTURE_PATTERN = r"^[a-z0-9_]{1,64}$"
MAX_OFFSET = 1_000_000
"""Deepest page offset a list accepts (Redis range arguments must stay 64-bit; no tenant has more)."""

AGENT_ID_FIELD = Field(
    None,
    pattern=AGENT_ID_PATTERN,
    description="Agent code of a READY agent of yours, e.g. A78WKV4515 (^[A-Z][A-Z0-9]{9}$).",
)

AgentIdPath = Annotated[
    str, Path(pattern=AGENT_ID_PATTERN, description="Agent code, e.g. A78WKV4515.", examples=["A78WKV4515"])
]
SessionIdPath = Annotated[
    str, Path(pattern=SESSION_ID_PATTERN, description="Session id (32 hex digits), from the create answer.")
]
GesturePath = Annotated[str, Path(pattern=GESTURE_PATTERN, description="Gesture name, e.g. head_tilt.")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip, newest first.")]


def exactly_one_of(*fields: str) -> dict[str, Any]:
    """JSON Schema for "exactly one of these (nullable) fields is given as a string"."""
    return {"oneOf": [{"required": [f], "properties": {f: {"type": "string"}}} for f in fields]}


MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MODEL_FIELD: Any = Field(
    "essence",
    pattern=MODEL_NAME_PATTERN,
    description="A model name this farm serves (`GET /v1/models`): essence, essence-2, expression, "
    "expression-2 by default; a name it does not serve is 400 MODEL_NOT_CONFIGURED with the list.",
)


class CreateSessionJson(BaseModel):
    """``POST /v1/sessions`` as JSON. Exactly one of ``avatar_id`` and ``avatar_image``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of("avatar_id", "avatar_image"))

    avatar_id: str | None = AGENT_ID_FIELD
    avatar_image: str | None = Field(None, description="Base64 PNG/JPEG of a face (no build step).")
    model: str = MODEL_FIELD
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

    system_prompt: str | None = Field(
        None, max_length=20_000, description="System turn of the answering model (when one is configured)."
    )
    voice: str | None = Field(
        None, max_length=100, description="Speech voice (espeak-ng or TTS backend name)."
    )

    def options(self) -> BuildOptions:
        """The build options alone (what is stored on the agent)."""
        return BuildOptions.model_validate(
            self.model_dump(exclude={"image", "model", "system_prompt", "voice"})
        )


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """A decoded agent registration (JSON or multipart), before validation of its image."""

    image: bytes
    options: BuildOptions
    model: ModelKind = ModelKind.ESSENCE
    system_prompt: str | None = None
    voice: str | None = None


class UpdateAgentJson(BaseModel):
    """``POST /v1/agent/{code}`` / ``PATCH /v1/agents/{id}``: the fields given are set (null clears)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=80, description="A label for people (cards).")
    system_prompt: str | None = Field(None, max_length=20_000)
    voice: str | None = Field(None, max_length=100)


class SpeakJson(BaseModel):
    """``POST /v1/agent/{code}/speak``: the avatar in a live room says ``message`` as given."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(..., min_length=1)
    room_id: str | None = Field(None, description="Only this room (default: every live room of the agent).")


class SpeakResult(BaseModel):
    success: bool = True
    message: str = "Message sent"
    delivered_to_rooms: list[str]


class AgentDeleted(BaseModel):
    success: bool = True
    message: str = "Agent deleted"
    agent_id: str


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """A decoded session request (JSON or multipart), before validation of its media."""

    model: ModelKind  # the queue (worker pool)
    audio: bytes
    audio_suffix: str
    avatar_id: str | None = None
    avatar_image: bytes | None = None
    engine: str | None = None  # the engine the public model name maps to (farm.kernel.models)
    model_name: str | None = None  # the public model name asked for


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
    name: str | None = None
    model: str = Field("essence", description="The model it was registered for.")
    status: str
    mode: str = Field(description="'person' or 'animal'.")
    framing: str = Field(description="'face' (a crop around the face) or 'full' (the whole image).")
    progress: float
    build_stage: str | None = Field(None, description="While processing: the builder's current stage.")
    error_message: str | None
    gestures: list[str]
    system_prompt: str | None = None
    voice: str | None = None
    created_at: float
    updated_at: float
    last_used_at: float | None = Field(None, description="When its latest session started (null: never).")

    @classmethod
    def of(cls, agent: Agent, last_used_at: float | None = None) -> AgentData:
        processing = agent.status.value == "processing"
        progress = agent.build_progress if processing else 1.0
        return cls(
            agent_id=agent.id,
            name=agent.name,
            model=agent.model,
            build_stage=agent.build_stage if processing else None,
            last_used_at=last_used_at,
            status=agent.status.value,
            mode=agent.build.mode.value,
            framing=agent.build.framing.value,
            progress=progress,
            error_message=agent.error_message,
            gestures=agent.gestures,
            system_prompt=agent.system_prompt,
            voice=agent.voice,
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
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="Stable code, e.g. VALIDATION_ERROR.")
    message: str = Field(description="What went wrong and what to do about it.")
    httpStatus: int = Field(ge=400, le=599)  # bitHuman's field name


class ErrorEnvelope(BaseModel):
    """Every error: ``{"error": {...}, "status": "error", "status_code": N}``."""

    error: ErrorBody
    status: Literal["error"] = "error"
    status_code: int = Field(ge=400, le=599)


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


class GenerateVideoJson(BaseModel):
    """``POST /v1/video/generate``: one avatar (``agent_id`` | ``image``), one of ``text`` | ``audio``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"allOf": [exactly_one_of("agent_id", "image"), exactly_one_of("text", "audio")]},
    )

    agent_id: str | None = AGENT_ID_FIELD
    image: str | None = Field(None, description="Base64 PNG/JPEG of a face instead of an agent.")
    text: str | None = Field(
        None,
        description="What to say to the avatar. With a chat model configured the avatar answers it; "
        "without one it speaks the text as given.",
    )
    audio: str | None = Field(None, description="Base64 speech to lip-sync instead of text.")
    model: str = MODEL_FIELD
    voice: str | None = Field(
        None, description="Voice for the speech (default: the agent's, then the farm's)."
    )


class VideoGenerated(BaseModel):
    """A queued text/audio-to-MP4 render: poll ``status_url``, then fetch ``video_url``."""

    success: bool = True
    session_id: str
    status: SessionState
    status_url: str
    video_url: str
    reply_text: str | None
    duration_s: float


class TtsJson(BaseModel):
    """``POST /v1/tts``: speech for ``text`` as WAV (no answering model)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., description="What to say.")
    voice: str | None = Field(None, description="Voice name (espeak-ng or the configured TTS backend's).")
    agent_id: str | None = Field(None, description="Use this agent's voice when no voice is given.")


class Validated(BaseModel):
    """``POST /v1/validate``: whether the ``api-secret`` is valid (always HTTP 200)."""

    valid: bool


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that a route decodes itself (size-capped)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
