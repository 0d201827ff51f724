"""The farm's operations as flows (sans-IO, see ``_core``): the one place each call is written.

``Farm`` holds the configuration (URL, secret, avatar, model, timeouts, retry policy) and turns every
SDK method into a flow: ``generate`` (text in, a finished video out: POST, then poll), the raw API
(agents, sessions from audio, fleet) and the health probes. ``AvatarSession`` and
``AsyncAvatarSession`` run these flows with their own I/O.
"""

from __future__ import annotations

import base64
import io
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._core import (
    HEADER_API_SECRET,
    HEADER_IDEMPOTENCY,
    Flow,
    HttpRequest,
    RetryPolicy,
    Sleep,
    call,
    probe,
)
from .errors import AuthenticationError, NetworkError, RenderError

SECRET_ENV_VARS = ("FARM_API_SECRET", "BITHUMAN_API_SECRET")
URL_ENV_VAR = "FARM_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8000"
MODELS = ("essence", "essence-2", "expression", "expression-2")
"""The public model names (the farm's model table); ``GET /v1/models`` says which a farm serves, and
one it does not (``expression-2`` without learned weights) answers 400 MODEL_NOT_CONFIGURED."""
TERMINAL = frozenset({"ENDED", "FAILED"})
AGENT_DONE = frozenset({"ready", "failed"})


@dataclass(frozen=True)
class SessionInfo:
    """A session as the farm reports it (``raw``: the whole JSON body)."""

    session_id: str
    status: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, body: dict[str, Any]) -> SessionInfo:
        return cls(body["session_id"], body["status"], body)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.raw.get("history", []))


@dataclass(frozen=True)
class AgentInfo:
    """An agent (registered avatar) as the farm reports it."""

    agent_id: str
    status: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, body: dict[str, Any]) -> AgentInfo:
        return cls(body["agent_id"], body["status"], body)


@dataclass(frozen=True)
class AvatarResponse:
    """One answered text: what the avatar said, its video, how long it took."""

    text: str  # what the avatar said (the reply, or the text itself without an answering model)
    prompt: str  # what was sent
    session_id: str
    video_url: str  # GET it with the api-secret header, or call download()
    video_path: str | None  # where the farm wrote the MP4 (useful when the farm shares this disk)
    duration_s: float  # length of the speech, so of the video
    first_frame_s: float | None  # request → first frame rendered (None when the farm did not record it)
    total_s: float  # request → video ready
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    _client: Any = field(repr=False, default=None, compare=False)

    def download(self, dest: str | Path) -> Path:
        """Save the MP4 to ``dest`` (responses of ``AvatarSession``)."""
        if not callable(getattr(self._client, "download", None)) or getattr(self._client, "is_async", False):
            raise TypeError(
                "this response came from AsyncAvatarSession: use `await response.adownload(dest)`"
            )
        path: Path = self._client.download(self, dest)
        return path

    async def adownload(self, dest: str | Path) -> Path:
        """Save the MP4 to ``dest`` (responses of ``AsyncAvatarSession``)."""
        if not getattr(self._client, "is_async", False):
            raise TypeError("this response came from AvatarSession: use `response.download(dest)`")
        path: Path = await self._client.download(self, dest)
        return path


def image_bytes(image: Any) -> bytes:
    """PNG bytes of a PIL image (bytes and paths are accepted too)."""
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    if isinstance(image, str | Path):
        return Path(image).read_bytes()
    if hasattr(image, "save"):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()
    raise TypeError("avatar_image must be a PIL image (or PNG/JPEG bytes, or a path)")


class Config(BaseModel):
    """A client's settings, checked once. ``avatar_id`` / ``image_b64``: at most one (none: the raw
    API only; ``generate_response`` then needs an avatar). A session with an avatar needs a secret
    (given, or from the environment) and refuses to start without one."""

    model_config = ConfigDict(frozen=True)

    api_url: str
    api_secret: str | None  # None: no header (the raw API's health probes; anything else is a 401)
    model: str = "essence"
    avatar_id: str | None = None
    image_b64: str | None = None
    request_timeout_s: float = Field(30.0, gt=0)
    response_timeout_s: float = Field(600.0, gt=0)
    poll_s: float = Field(0.2, ge=0)

    @model_validator(mode="after")
    def _one_avatar(self) -> Config:
        if self.avatar_id is not None and self.image_b64 is not None:
            raise ValueError("give exactly one of avatar_id and avatar_image, not both")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, not {self.model!r}")
        return self

    @classmethod
    def of(
        cls,
        *,
        avatar_id: str | None,
        avatar_image: Any,
        api_secret: str | None,
        api_url: str | None,
        environ: Mapping[str, str] = os.environ,
        **rest: Any,
    ) -> Config:
        """Fill the secret and URL from the environment when not given."""
        secret = api_secret or next((environ[v] for v in SECRET_ENV_VARS if environ.get(v)), None)
        if not secret and (avatar_id is not None or avatar_image is not None):
            raise AuthenticationError(
                f"no api_secret given and none of {', '.join(SECRET_ENV_VARS)} is set",
                code="MISSING_AUTH",
                status=401,
            )
        image = base64.b64encode(image_bytes(avatar_image)).decode() if avatar_image is not None else None
        url = (api_url or environ.get(URL_ENV_VAR) or DEFAULT_API_URL).rstrip("/")
        return cls(api_url=url, api_secret=secret, avatar_id=avatar_id, image_b64=image, **rest)

    def headers(self) -> dict[str, str]:
        return {HEADER_API_SECRET: self.api_secret} if self.api_secret else {}


def _first_frame_s(session: dict[str, Any], created_after_s: float) -> float | None:
    """Request → first frame: the client's wait for the POST plus the farm's QUEUED → STREAMING."""
    streaming = next((h["at"] for h in session.get("history", []) if h.get("state") == "STREAMING"), None)
    if streaming is None:
        return None
    return round(created_after_s + max(0.0, float(streaming) - float(session["created_at"])), 3)


def _finished(session: dict[str, Any]) -> bool:
    state = session.get("status")
    if state == "FAILED":
        failure = session.get("failure") or {}
        raise RenderError(
            str(failure.get("message", "the render failed")), code=str(failure.get("code", "RENDER_FAILED"))
        )
    return state == "ENDED"


@dataclass
class Farm:
    """Every operation of the SDK, as flows over one configuration and retry policy."""

    config: Config
    policy: RetryPolicy
    clock: Callable[[], float]

    def _call(self, method: str, path: str, **kw: Any) -> Flow[Any]:
        return call(HttpRequest(method, path, **kw), self.policy)

    # ------------------------------------------------------------ text in, video out
    def generate(self, text: str, client: Any) -> Flow[AvatarResponse]:
        """POST ``/v1/video/generate`` (one Idempotency-Key for every retry), poll until ENDED."""
        cfg = self.config
        if cfg.avatar_id is None and cfg.image_b64 is None:
            raise ValueError("this session names no avatar: give avatar_id or avatar_image")
        avatar = {"agent_id": cfg.avatar_id} if cfg.avatar_id is not None else {"image": cfg.image_b64}
        began = self.clock()
        created = yield from self._call(
            "POST",
            "/v1/video/generate",
            json={**avatar, "text": text, "model": cfg.model},
            headers={HEADER_IDEMPOTENCY: uuid.uuid4().hex},
        )
        created_after_s = self.clock() - began
        deadline = began + cfg.response_timeout_s
        while True:
            session = yield from self._call("GET", f"/v1/sessions/{created['session_id']}")
            if _finished(session):
                break
            if self.clock() > deadline:
                raise NetworkError(
                    f"no video after {cfg.response_timeout_s:g} s (session {created['session_id']})",
                    code="TIMEOUT",
                )
            yield Sleep(cfg.poll_s)
        return AvatarResponse(
            text=created.get("reply_text") or text,
            prompt=text,
            session_id=created["session_id"],
            video_url=created["video_url"],
            video_path=session.get("output"),
            duration_s=float(created["duration_s"]),
            first_frame_s=_first_frame_s(session, created_after_s),
            total_s=round(self.clock() - began, 3),
            raw={"created": created, "session": session},
            _client=client,
        )

    def video(self, session_id: str) -> Flow[bytes]:
        data: bytes = yield from self._call("GET", f"/v1/sessions/{session_id}/video", raw=True)
        return data

    # ------------------------------------------------------------ health
    def healthy(self) -> Flow[bool]:
        return probe("/healthz")

    def ready(self) -> Flow[bool]:
        return probe("/readyz")

    def fleet(self) -> Flow[dict[str, Any]]:
        body: dict[str, Any] = yield from self._call("GET", "/v1/fleet")
        return body

    # ------------------------------------------------------------ sessions
    def create_session(
        self,
        *,
        audio: bytes,
        avatar_id: str | None,
        avatar_image: bytes | None,
        model: str,
        audio_filename: str,
    ) -> Flow[SessionInfo]:
        """Queue a session from an audio upload (multipart); not retried once it may have landed."""
        files: dict[str, tuple[str, bytes]] = {"audio": (audio_filename, audio)}
        if avatar_image is not None:
            files["avatar_image"] = ("face.png", avatar_image)
        data = {"model": model, **({"avatar_id": avatar_id} if avatar_id else {})}
        body = yield from self._call("POST", "/v1/sessions", files=files, data=data, idempotent=False)
        return SessionInfo.of(body)

    def create_session_json(self, body: dict[str, Any]) -> Flow[SessionInfo]:
        created = yield from self._call("POST", "/v1/sessions", json=body, idempotent=False)
        return SessionInfo.of(created)

    def get_session(self, session_id: str) -> Flow[SessionInfo]:
        return SessionInfo.of((yield from self._call("GET", f"/v1/sessions/{session_id}")))

    def list_sessions(self, *, limit: int, offset: int) -> Flow[list[SessionInfo]]:
        body = yield from self._call("GET", "/v1/sessions", params={"limit": limit, "offset": offset})
        return [SessionInfo.of(s) for s in body["data"]]

    def stop_session(self, session_id: str) -> Flow[SessionInfo]:
        return SessionInfo.of((yield from self._call("DELETE", f"/v1/sessions/{session_id}")))

    def wait_session(
        self,
        session_id: str,
        *,
        until: Iterable[str],
        deadline_s: float,
        poll_s: float,
        on_status: Callable[[SessionInfo], None] | None,
    ) -> Flow[SessionInfo]:
        """Poll until the session reaches one of ``until``; TimeoutError past the deadline."""
        wanted, end = frozenset(until), self.clock() + deadline_s
        while True:
            info = yield from self.get_session(session_id)
            if on_status is not None:
                on_status(info)
            if info.status in wanted:
                return info
            if self.clock() > end:
                raise TimeoutError(f"session {session_id} still {info.status} after {deadline_s:g} s")
            yield Sleep(poll_s)

    # ------------------------------------------------------------ agents
    def create_agent(self, image: bytes, options: dict[str, Any]) -> Flow[AgentInfo]:
        """Register an image (the route honours Idempotency-Key, so the POST is safe to retry)."""
        body = yield from self._call(
            "POST",
            "/v1/agents",
            json={"image": base64.b64encode(image).decode(), **options},
            headers={HEADER_IDEMPOTENCY: uuid.uuid4().hex},
        )
        return AgentInfo.of(body)

    def get_agent(self, agent_id: str) -> Flow[AgentInfo]:
        return AgentInfo.of((yield from self._call("GET", f"/v1/agents/{agent_id}"))["data"])

    def list_agents(self, *, limit: int, offset: int) -> Flow[list[AgentInfo]]:
        body = yield from self._call("GET", "/v1/agents", params={"limit": limit, "offset": offset})
        return [AgentInfo.of(a) for a in body["data"]]

    def wait_agent(
        self,
        agent_id: str,
        *,
        deadline_s: float,
        poll_s: float,
        on_status: Callable[[AgentInfo], None] | None,
    ) -> Flow[AgentInfo]:
        """Poll until the agent is ``ready`` or ``failed``; TimeoutError past the deadline."""
        end = self.clock() + deadline_s
        while True:
            info = yield from self.get_agent(agent_id)
            if on_status is not None:
                on_status(info)
            if info.status in AGENT_DONE:
                return info
            if self.clock() > end:
                raise TimeoutError(f"agent {agent_id} still {info.status} after {deadline_s:g} s")
            yield Sleep(poll_s)
