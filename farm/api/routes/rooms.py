"""``POST /v1/rooms``: an agent in a fresh room of the farm's own LiveKit server, to watch in a browser.

The studio's "Try it" (``farm.api.rooms``): the answer carries the session (stop it with ``DELETE
/v1/sessions/{id}``), the room and a subscribe-only token for the page. Speak with ``POST
/v1/agent/{id}/speak`` ``{"message", "room_id"}``; gesture with ``POST /v1/sessions/{id}/dynamics``.
503 LIVEKIT_NOT_CONFIGURED on a farm without LiveKit (use ``POST /v1/video/generate`` there).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from farm.api import inputs, rooms
from farm.api.deps import Caller, Services
from farm.api.routes.viewer import DEFAULT_VIEWER_TTL_S, viewer_token
from farm.api.schemas import AGENT_ID_PATTERN, ERROR_RESPONSES, MODEL_FIELD, json_body_doc
from farm.kernel.domain import SessionState

router = APIRouter(tags=["viewer"], responses=ERROR_RESPONSES)


class StartRoomJson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(pattern=AGENT_ID_PATTERN, description="A READY agent of yours.")
    model: str = MODEL_FIELD


class RoomStartedView(BaseModel):
    session_id: str
    status: SessionState
    room_name: str
    livekit_url: str
    viewer_token: str = Field(description="Joins the room to subscribe only (no publish, no data).")
    expires_at: float


@router.post(
    "/v1/rooms", status_code=201, response_model=RoomStartedView, openapi_extra=json_body_doc(StartRoomJson)
)
async def start_room(request: Request, farm: Services, key: Caller) -> RoomStartedView:
    """Queue the agent in a new room on the farm's LiveKit server and get a token to watch it."""
    body: StartRoomJson = await inputs.json_body(request, farm.settings, StartRoomJson)
    start = rooms.studio_start(farm.settings, body.agent_id, body.model)
    session, _ = await run_in_threadpool(rooms.start_room, farm, key, start)  # Redis, broker
    settings = farm.settings
    assert settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret  # studio_start
    token = viewer_token(
        settings.livekit_api_key, settings.livekit_api_secret, start.join.room, ttl_s=DEFAULT_VIEWER_TTL_S
    )
    return RoomStartedView(
        session_id=session.id,
        status=session.state,
        room_name=start.join.room,
        livekit_url=settings.livekit_url,
        viewer_token=token,
        expires_at=time.time() + DEFAULT_VIEWER_TTL_S,
    )
