"""``AvatarSession`` (sync) and ``AsyncAvatarSession`` (asyncio): the SDK's one client name.

avatar = AvatarSession(avatar_id="A78WKV4515", api_secret=secret)            # essence (default)
avatar = AvatarSession(avatar_image=Image.open("me.png"), model="expression")  # secret from env
response = avatar.generate_response("Hello, how are you?")
response.download("hello.mp4"); print(response.text, response.duration_s, response.first_frame_s)

``generate_response`` posts ``/v1/video/generate`` (with a fresh ``Idempotency-Key``, so a retried
POST never renders twice), polls the session until it ENDS, and returns an ``AvatarResponse``. The
same object reaches the raw API — agents, sessions from audio, the fleet — with or without an avatar:

farm = AvatarSession(api_secret=secret, api_url="http://127.0.0.1:8000")
agent = farm.wait_agent(farm.create_agent(Path("me.png").read_bytes()).agent_id)

Retries: connection errors, timeouts, transient 5xx and 429 are retried ``max_retries`` times with
exponential backoff and jitter (429 waits ``Retry-After``); everything else raises at once. Both
classes are thin: every request, answer and retry is decided in ``_api``/``_core`` (sans-IO).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ._api import TERMINAL, AgentInfo, AvatarResponse, Config, Farm, SessionInfo
from ._core import Flow, RetryPolicy, log
from ._drivers import drive_async, drive_sync

T = TypeVar("T")


def _configure_debug(debug: bool) -> None:
    if debug:
        log.setLevel(logging.DEBUG)
        if not log.handlers and not logging.getLogger().handlers:
            log.addHandler(logging.StreamHandler())


def _farm(
    *,
    avatar_id: str | None,
    avatar_image: Any,
    api_secret: str | None,
    model: str,
    api_url: str | None,
    debug: bool,
    request_timeout_s: float,
    response_timeout_s: float,
    max_retries: int,
    backoff_s: float,
    poll_s: float,
) -> Farm:
    config = Config.of(
        avatar_id=avatar_id,
        avatar_image=avatar_image,
        api_secret=api_secret,
        api_url=api_url,
        model=model,
        request_timeout_s=request_timeout_s,
        response_timeout_s=response_timeout_s,
        poll_s=poll_s,
    )
    _configure_debug(debug)
    return Farm(config, RetryPolicy(max_retries=max_retries, backoff_s=backoff_s), time.perf_counter)


def _write(path: str | Path, data: bytes) -> Path:
    out = Path(path)
    out.write_bytes(data)
    return out


class AvatarSession:
    """A talking avatar behind the farm's API, and the farm's raw API (synchronous)."""

    is_async = False

    def __init__(
        self,
        *,
        avatar_id: str | None = None,
        avatar_image: Any = None,
        api_secret: str | None = None,
        model: str = "essence",
        api_url: str | None = None,
        debug: bool = False,
        request_timeout_s: float = 30.0,
        response_timeout_s: float = 600.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        poll_s: float = 0.2,
        http: httpx.Client | None = None,
    ) -> None:
        """``http``: an existing httpx client to send through (tests pass a Starlette TestClient)."""
        self._farm = _farm(
            avatar_id=avatar_id, avatar_image=avatar_image, api_secret=api_secret, model=model,
            api_url=api_url, debug=debug, request_timeout_s=request_timeout_s,
            response_timeout_s=response_timeout_s, max_retries=max_retries, backoff_s=backoff_s,
            poll_s=poll_s,
        )  # fmt: skip
        cfg = self._farm.config
        self._http = http or httpx.Client(base_url=cfg.api_url, timeout=request_timeout_s)
        self._http.headers.update(cfg.headers())

    def _run(self, flow: Flow[T]) -> T:
        return drive_sync(flow, self._http)

    @property
    def model(self) -> str:
        return self._farm.config.model

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AvatarSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ text in, video out
    def generate_response(self, text: str) -> AvatarResponse:
        """The avatar answers ``text``: queue the render, wait for its MP4, return the response."""
        return self._run(self._farm.generate(text, self))

    def download(self, response: AvatarResponse, dest: str | Path) -> Path:
        """Save ``response``'s MP4 to ``dest``."""
        return _write(dest, self._run(self._farm.video(response.session_id)))

    # ------------------------------------------------------------ the raw API
    def healthy(self) -> bool:
        """True when ``/healthz`` answers (never raises)."""
        return self._run(self._farm.healthy())

    def ready(self) -> bool:
        """True when ``/readyz`` answers (Redis reachable; never raises)."""
        return self._run(self._farm.ready())

    def fleet(self) -> dict[str, Any]:
        return self._run(self._farm.fleet())

    def create_session(
        self,
        *,
        audio: bytes,
        avatar_id: str | None = None,
        avatar_image: bytes | None = None,
        model: str = "essence",
        audio_filename: str = "speech.wav",
    ) -> SessionInfo:
        """Queue a session from audio (multipart upload). Returns at once with status QUEUED."""
        flow = self._farm.create_session(
            audio=audio, avatar_id=avatar_id, avatar_image=avatar_image, model=model,
            audio_filename=audio_filename,
        )  # fmt: skip
        return self._run(flow)

    def create_session_json(self, body: dict[str, Any]) -> SessionInfo:
        """Queue a session from a JSON body as-is (media already base64)."""
        return self._run(self._farm.create_session_json(body))

    def get_session(self, session_id: str) -> SessionInfo:
        return self._run(self._farm.get_session(session_id))

    def list_sessions(self, *, limit: int = 50, offset: int = 0) -> list[SessionInfo]:
        return self._run(self._farm.list_sessions(limit=limit, offset=offset))

    def stop_session(self, session_id: str) -> SessionInfo:
        return self._run(self._farm.stop_session(session_id))

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
        flow = self._farm.wait_session(
            session_id, until=until, deadline_s=deadline_s, poll_s=poll_s, on_status=on_status
        )
        return self._run(flow)

    def create_agent(self, image: bytes, **options: Any) -> AgentInfo:
        """Register an image; ``options`` are the build options of ``POST /v1/agents`` (``mode``,
        ``framing``, ``crop_scale``, ``size``, ``mouth_box``, ``mouth_points``, ``eyes``, ``model``)."""
        return self._run(self._farm.create_agent(image, options))

    def get_agent(self, agent_id: str) -> AgentInfo:
        return self._run(self._farm.get_agent(agent_id))

    def list_agents(self, *, limit: int = 50, offset: int = 0) -> list[AgentInfo]:
        return self._run(self._farm.list_agents(limit=limit, offset=offset))

    def wait_agent(
        self,
        agent_id: str,
        *,
        deadline_s: float = 600.0,
        poll_s: float = 0.5,
        on_status: Callable[[AgentInfo], None] | None = None,
    ) -> AgentInfo:
        """Poll until the agent is ``ready`` or ``failed``; TimeoutError past the deadline."""
        flow = self._farm.wait_agent(agent_id, deadline_s=deadline_s, poll_s=poll_s, on_status=on_status)
        return self._run(flow)


class AsyncAvatarSession:
    """``AvatarSession`` for asyncio: ``await avatar.generate_response(text)``; ``async with``."""

    is_async = True

    def __init__(
        self,
        *,
        avatar_id: str | None = None,
        avatar_image: Any = None,
        api_secret: str | None = None,
        model: str = "essence",
        api_url: str | None = None,
        debug: bool = False,
        request_timeout_s: float = 30.0,
        response_timeout_s: float = 600.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        poll_s: float = 0.2,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._farm = _farm(
            avatar_id=avatar_id, avatar_image=avatar_image, api_secret=api_secret, model=model,
            api_url=api_url, debug=debug, request_timeout_s=request_timeout_s,
            response_timeout_s=response_timeout_s, max_retries=max_retries, backoff_s=backoff_s,
            poll_s=poll_s,
        )  # fmt: skip
        cfg = self._farm.config
        self._http = http or httpx.AsyncClient(base_url=cfg.api_url, timeout=request_timeout_s)
        self._http.headers.update(cfg.headers())

    async def _run(self, flow: Flow[T]) -> T:
        return await drive_async(flow, self._http)

    @property
    def model(self) -> str:
        return self._farm.config.model

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAvatarSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def generate_response(self, text: str) -> AvatarResponse:
        """The avatar answers ``text``: queue the render, wait for its MP4, return the response."""
        return await self._run(self._farm.generate(text, self))

    async def download(self, response: AvatarResponse, dest: str | Path) -> Path:
        return _write(dest, await self._run(self._farm.video(response.session_id)))

    async def healthy(self) -> bool:
        return await self._run(self._farm.healthy())

    async def ready(self) -> bool:
        return await self._run(self._farm.ready())

    async def fleet(self) -> dict[str, Any]:
        return await self._run(self._farm.fleet())

    async def create_session(
        self,
        *,
        audio: bytes,
        avatar_id: str | None = None,
        avatar_image: bytes | None = None,
        model: str = "essence",
        audio_filename: str = "speech.wav",
    ) -> SessionInfo:
        flow = self._farm.create_session(
            audio=audio, avatar_id=avatar_id, avatar_image=avatar_image, model=model,
            audio_filename=audio_filename,
        )  # fmt: skip
        return await self._run(flow)

    async def get_session(self, session_id: str) -> SessionInfo:
        return await self._run(self._farm.get_session(session_id))

    async def list_sessions(self, *, limit: int = 50, offset: int = 0) -> list[SessionInfo]:
        return await self._run(self._farm.list_sessions(limit=limit, offset=offset))

    async def stop_session(self, session_id: str) -> SessionInfo:
        return await self._run(self._farm.stop_session(session_id))

    async def wait_session(
        self,
        session_id: str,
        *,
        until: Iterable[str] = TERMINAL,
        deadline_s: float = 300.0,
        poll_s: float = 0.2,
        on_status: Callable[[SessionInfo], None] | None = None,
    ) -> SessionInfo:
        flow = self._farm.wait_session(
            session_id, until=until, deadline_s=deadline_s, poll_s=poll_s, on_status=on_status
        )
        return await self._run(flow)

    async def create_agent(self, image: bytes, **options: Any) -> AgentInfo:
        return await self._run(self._farm.create_agent(image, options))

    async def get_agent(self, agent_id: str) -> AgentInfo:
        return await self._run(self._farm.get_agent(agent_id))

    async def list_agents(self, *, limit: int = 50, offset: int = 0) -> list[AgentInfo]:
        return await self._run(self._farm.list_agents(limit=limit, offset=offset))

    async def wait_agent(
        self,
        agent_id: str,
        *,
        deadline_s: float = 600.0,
        poll_s: float = 0.5,
        on_status: Callable[[AgentInfo], None] | None = None,
    ) -> AgentInfo:
        flow = self._farm.wait_agent(agent_id, deadline_s=deadline_s, poll_s=poll_s, on_status=on_status)
        return await self._run(flow)


class AvatarFarm(AvatarSession):
    """Deprecated: the raw-API client is ``AvatarSession`` now (``AvatarSession(api_url=…,
    api_secret=…)``). Kept so existing code runs: same signature, no retries, as before."""

    def __init__(
        self,
        base_url: str,
        api_secret: str | None = None,
        *,
        request_timeout_s: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        warnings.warn(
            "AvatarFarm is deprecated: use AvatarSession(api_url=..., api_secret=...), which has the "
            "same methods",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(
            api_url=base_url,
            api_secret=api_secret,
            request_timeout_s=request_timeout_s,
            max_retries=0,
            http=http,
        )
