"""``/v1/sessions``: create (JSON or multipart), read, list, stop. Thin: decode, call, return."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from farm.api import inputs
from farm.api.deps import Caller, Services
from farm.api.schemas import (
    ERROR_RESPONSES,
    CreateSessionJson,
    Limit,
    Offset,
    SessionCreated,
    SessionIdPath,
    SessionList,
    SessionView,
)

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=ERROR_RESPONSES)

_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["audio"],
    "properties": {
        "audio": {"type": "string", "format": "binary", "description": "WAV/MP3/OGG/FLAC/M4A clip"},
        "avatar_image": {"type": "string", "format": "binary", "description": "PNG/JPEG face"},
        "avatar_id": {"type": "string", "pattern": "^[A-Z][A-Z0-9]{9}$"},
        "model": {"type": "string", "enum": ["essence", "expression"], "default": "essence"},
    },
}
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": CreateSessionJson.model_json_schema()},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
    }
}


def _status_url(request: Request, public_url: str | None, session_id: str) -> str:
    base = (public_url or str(request.base_url)).rstrip("/")
    return f"{base}/v1/sessions/{session_id}"


@router.post("", status_code=201, response_model=SessionCreated, openapi_extra=_CREATE_BODY)
async def create_session(request: Request, farm: Services, key: Caller) -> SessionCreated:
    """Queue a session on the model's queue. Returns at once; poll ``status_url``."""
    body = await inputs.session_request(request, farm.settings)
    audio_s = await farm.sessions.measure_audio(body.audio)  # off the event loop, bounded concurrency
    session = await run_in_threadpool(farm.sessions.create, key, body, audio_s=audio_s)  # Redis, broker
    url = _status_url(request, farm.settings.public_url, session.id)
    return SessionCreated(session_id=session.id, status=session.state, status_url=url)


@router.get("", response_model=SessionList)
def list_sessions(
    farm: Services,
    key: Caller,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SessionList:
    """Your sessions, newest first."""
    sessions = farm.sessions.list(key, limit=limit, offset=offset)
    return SessionList(data=[SessionView.of(s) for s in sessions], limit=limit, offset=offset)


@router.get("/{session_id}", response_model=SessionView)
def get_session(session_id: SessionIdPath, farm: Services, key: Caller) -> SessionView:
    """One of your sessions (another tenant's is 404)."""
    return SessionView.of(farm.sessions.get(key, session_id))


@router.delete("/{session_id}", response_model=SessionView)
def stop_session(session_id: SessionIdPath, farm: Services, key: Caller) -> SessionView:
    """Stop a session: QUEUED ends at once, a running one within a tick. An ended one is 409."""
    return SessionView.of(farm.sessions.stop(key, session_id))
