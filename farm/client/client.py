"""``AvatarFarm``: a small synchronous client of the farm's HTTP API (httpx).

farm = AvatarFarm("http://127.0.0.1:8000", api_secret="farm_…")
agent = farm.create_agent(Path("me.png").read_bytes())
farm.wait_agent(agent.agent_id)
session = farm.create_session(audio=Path("hi.wav").read_bytes(), avatar_id=agent.agent_id)
done = farm.wait_session(session.session_id)
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from farm.kernel import names
from farm.kernel.errors import FarmError

TERMINAL = frozenset({"ENDED", "FAILED"})


def _all_error_classes() -> dict[str, type[FarmError]]:
    found: dict[str, type[FarmError]] = {}
    pending: list[type[FarmError]] = [FarmError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


_BY_CODE = _all_error_classes()


class _RemoteError(FarmError):
    """An error code this client does not know; carries the server's status and code."""


def error_from_envelope(status: int, body: Any) -> FarmError:
    """The FarmError an error response stands for (matched by its stable code)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        remote = _RemoteError(f"HTTP {status}: {str(body)[:200]}")
        remote.http_status = status  # type: ignore[misc]
        return remote
    code, message = str(err.get("code", "")), str(err.get("message", ""))
    cls = _BY_CODE.get(code)
    if cls is None:
        unknown = _RemoteError(message)
        unknown.code = code  # type: ignore[misc]
        unknown.http_status = status  # type: ignore[misc]
        return unknown
    return cls(message)


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    status: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.raw.get("history", []))


@dataclass(frozen=True)
class AgentInfo:
    agent_id: str
    status: str
    raw: dict[str, Any] = field(repr=False)


class AvatarFarm:
    """Client of one farm API. Every ``/v1`` call sends the ``api-secret`` header."""

    def __init__(
        self,
        base_url: str,
        api_secret: str | None = None,
        *,
        request_timeout_s: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        """``http``: an existing httpx client to send through (tests pass a Starlette TestClient)."""
        headers = {names.HEADER_API_SECRET: api_secret} if api_secret else {}
        if http is None:
            http = httpx.Client(base_url=base_url.rstrip("/"), timeout=request_timeout_s)
        http.headers.update(headers)
        self._http = http

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AvatarFarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise error_from_envelope(response.status_code, body)
        return body

    # ------------------------------------------------------------ health
    def healthy(self) -> bool:
        """True when ``/healthz`` answers (never raises)."""
        try:
            return self._http.get("/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def fleet(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/fleet")
        return result

    # ------------------------------------------------------------ sessions
    def create_session(
        self,
        *,
        audio: bytes,
        avatar_id: str | None = None,
        avatar_image: bytes | None = None,
        model: str = "essence",
        audio_filename: str = "speech.wav",
    ) -> SessionInfo:
        """Queue a session (multipart upload). Returns at once with status QUEUED."""
        files: dict[str, tuple[str, bytes]] = {"audio": (audio_filename, audio)}
        if avatar_image is not None:
            files["avatar_image"] = ("face.png", avatar_image)
        data = {"model": model, **({"avatar_id": avatar_id} if avatar_id else {})}
        body = self._call("POST", "/v1/sessions", files=files, data=data)
        return SessionInfo(body["session_id"], body["status"], body)

    def create_session_json(self, body: dict[str, Any]) -> SessionInfo:
        """Queue a session from a JSON body as-is (media already base64)."""
        created = self._call("POST", "/v1/sessions", json=body)
        return SessionInfo(created["session_id"], created["status"], created)

    def get_session(self, session_id: str) -> SessionInfo:
        body = self._call("GET", f"/v1/sessions/{session_id}")
        return SessionInfo(body["session_id"], body["status"], body)

    def list_sessions(self, *, limit: int = 50, offset: int = 0) -> list[SessionInfo]:
        body = self._call("GET", "/v1/sessions", params={"limit": limit, "offset": offset})
        return [SessionInfo(s["session_id"], s["status"], s) for s in body["data"]]

    def stop_session(self, session_id: str) -> SessionInfo:
        body = self._call("DELETE", f"/v1/sessions/{session_id}")
        return SessionInfo(body["session_id"], body["status"], body)

    def wait_session(
        self,
        session_id: str,
        *,
        until: Iterable[str] = TERMINAL,
        deadline_s: float = 300.0,
        poll_s: float = 0.2,
        on_status: Callable[[SessionInfo], None] | None = None,
    ) -> SessionInfo:
        """Poll until the session reaches one of ``until``; TimeoutError past the deadline."""
        wanted = frozenset(until)
        end = time.monotonic() + deadline_s
        while True:
            info = self.get_session(session_id)
            if on_status is not None:
                on_status(info)
            if info.status in wanted:
                return info
            if time.monotonic() > end:
                raise TimeoutError(f"session {session_id} still {info.status} after {deadline_s:g} s")
            time.sleep(poll_s)

    # ------------------------------------------------------------ agents
    def create_agent(self, image: bytes, **options: Any) -> AgentInfo:
        """Register an image; ``options`` are the build options of ``POST /v1/agents`` (``mode``,
        ``framing``, ``crop_scale``, ``size``, ``mouth_box``, ``mouth_points``, ``eyes``, ``model``)."""
        body = self._call("POST", "/v1/agents", json={"image": base64.b64encode(image).decode(), **options})
        return AgentInfo(body["agent_id"], body["status"], body)

    def get_agent(self, agent_id: str) -> AgentInfo:
        data = self._call("GET", f"/v1/agents/{agent_id}")["data"]
        return AgentInfo(data["agent_id"], data["status"], data)

    def wait_agent(
        self,
        agent_id: str,
        *,
        deadline_s: float = 600.0,
        poll_s: float = 0.5,
        on_status: Callable[[AgentInfo], None] | None = None,
    ) -> AgentInfo:
        """Poll until the agent is ``ready`` or ``failed``; TimeoutError past the deadline."""
        end = time.monotonic() + deadline_s
        while True:
            info = self.get_agent(agent_id)
            if on_status is not None:
                on_status(info)
            if info.status in ("ready", "failed"):
                return info
            if time.monotonic() > end:
                raise TimeoutError(f"agent {agent_id} still {info.status} after {deadline_s:g} s")
            time.sleep(poll_s)


__all__ = ["AgentInfo", "AvatarFarm", "SessionInfo", "error_from_envelope"]
