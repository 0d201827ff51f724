"""A browser watches the avatar: the viewer page and its short-lived, subscribe-only links.

* ``POST /v1/rooms/{room}/viewer`` (api-secret): for a room where the caller's tenant has a live
  session on the farm's configured LiveKit server, a link ``/view/{room}#url=…&token=…`` whose token
  can only subscribe (no publish, no data), for ``ttl_s`` seconds. The token sits in the URL
  fragment, which browsers never send to a server.
* ``GET /view/{room}``: the page (no key: everything it needs is in the fragment). It plays the
  avatar's video and audio and exposes ``window.viewer`` (timings, frames, audio level, snapshots).
* ``GET /static/livekit-client.umd.js``: the livekit-client SDK, served by the farm itself (no CDN):
  ``web/package.json`` pins it, ``make install`` copies npm's build into ``farm/api/static/vendor``.

LiveKit tokens are HS256 JWTs (LiveKit's claim names); they are signed here with PyJWT so the API
process stays free of the LiveKit SDK.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated

import jwt
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from farm.api.deps import Caller, Services
from farm.api.schemas import ERROR_RESPONSES
from farm.kernel.errors import FarmError, LiveKitNotConfigured, NotFound

router = APIRouter(tags=["viewer"])

STATIC_DIR = Path(__file__).parents[1] / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
LIVEKIT_CLIENT = "livekit-client.umd.js"
ROOM_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"
RoomName = Annotated[str, PathParam(pattern=ROOM_PATTERN, description="LiveKit room name")]


class AssetMissing(FarmError):
    http_status = 503
    code = "ASSET_MISSING"


def viewer_token(api_key: str, api_secret: str, room: str, *, ttl_s: int, now: float | None = None) -> str:
    """A LiveKit access token that may join ``room`` and subscribe, nothing else."""
    issued = int(now if now is not None else time.time())
    identity = f"viewer-{secrets.token_hex(4)}"
    claims = {
        "iss": api_key,
        "sub": identity,
        "name": identity,
        "nbf": issued,
        "exp": issued + ttl_s,
        "video": {
            "room": room,
            "roomJoin": True,
            "canSubscribe": True,
            "canPublish": False,
            "canPublishData": False,
        },
    }
    return jwt.encode(claims, api_secret, algorithm="HS256")


def viewer_path(room: str, livekit_url: str, token: str) -> str:
    """The page path with its fragment (append to the farm's base URL)."""
    return f"/view/{room}#url={livekit_url}&token={token}"


DEFAULT_VIEWER_TTL_S = 3600


class ViewerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_s: int = Field(
        DEFAULT_VIEWER_TTL_S, ge=60, le=24 * 3600, description="How long the link may join the room."
    )


class ViewerLink(BaseModel):
    viewer_url: str = Field(description="Open in a browser; the token is in the fragment.")
    room_name: str
    expires_at: float


@router.post("/v1/rooms/{room}/viewer", response_model=ViewerLink, responses=ERROR_RESPONSES)
def create_viewer_link(
    room: RoomName, key: Caller, services: Services, request: Request, body: ViewerRequest | None = None
) -> ViewerLink:
    """A short-lived, subscribe-only link to watch your avatar in ``room`` from a browser."""
    settings = services.settings
    if not (settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret):
        raise LiveKitNotConfigured(
            "this farm has no LiveKit server configured (FARM_LIVEKIT_URL, _API_KEY, _SECRET)"
        )
    live = [
        s
        for s in services.store.live_for_tenant(key.tenant)
        if s.livekit is not None and s.livekit.room == room
    ]
    if not live:
        raise NotFound(f"no live session of yours in room {room!r}")
    ttl_s = body.ttl_s if body is not None else DEFAULT_VIEWER_TTL_S
    token = viewer_token(settings.livekit_api_key, settings.livekit_api_secret, room, ttl_s=ttl_s)
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return ViewerLink(
        viewer_url=base + viewer_path(room, settings.livekit_url, token),
        room_name=room,
        expires_at=time.time() + ttl_s,
    )


@router.get("/view/{room}", response_class=HTMLResponse, include_in_schema=False)
def viewer_page(room: RoomName) -> HTMLResponse:
    return HTMLResponse((STATIC_DIR / "viewer.html").read_text(), headers={"Cache-Control": "no-store"})


@router.get(f"/static/{LIVEKIT_CLIENT}", include_in_schema=False)
def livekit_client_js() -> FileResponse:
    path = VENDOR_DIR / LIVEKIT_CLIENT
    if not path.is_file():
        raise AssetMissing(
            "the browser SDK is not installed on this farm: run `make install` (npm ci in web/ "
            "copies livekit-client into farm/api/static/vendor)"
        )
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})
