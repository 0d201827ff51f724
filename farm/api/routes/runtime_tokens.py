"""``POST /v1/runtime-tokens/request``: the drop-in front door for ``livekit-plugins-bithuman``.

Point the plugin at the farm (``api_url="https://farm.example/v1/runtime-tokens/request"`` or
``BITHUMAN_API_URL``) and pass a farm key as ``api_secret``; nothing else changes. The plugin sends
(``livekit/plugins/bithuman/avatar.py`` of livekit-plugins-bithuman 1.8.9):

* JSON with header ``api-secret``: ``livekit_url``, ``livekit_token``, ``room_name``, ``mode``
  (``cpu|gpu``), optional ``model``, ``image`` (base64), ``agent_id``;
* a form with ``Authorization: Bearer <secret>`` (custom URL + ``expression*`` model):
  ``livekit_url``, ``livekit_token``, ``room_name``, optional ``model``, ``async_mode``,
  ``avatar_image`` (file), ``avatar_image_url``, ``avatar_id``. aiohttp sends it as multipart when
  a file is attached and as ``application/x-www-form-urlencoded`` when not; both are accepted.

The route decodes the request (the caller's token parsed once) and hands it to the room-start use
case (``farm.api.rooms.start_room``), which creates the room session and queues it like any other
session; it answers 200 at once (the plugin has no read timeout and ignores the body); the worker
joins the room afterwards. Routing: ``model`` wins (a name of the farm's model table, see
``farm.kernel.models``: names it does not serve, like ``essence-3``, are 400, never mapped to
another model); else ``mode`` (cpu → essence, gpu → expression); an image without a model →
expression. One live session per (room, avatar identity) per tenant: the plugin's retries get the
same session back.

``api_secret`` may be a full key or a runtime key (``POST /v1/runtime-tokens/mint``, see
``farm.tenancy.runtime_keys``): short-lived and scoped, it is what should go into rooms.

``livekit_url`` must be on the farm's allow-list (``farm.api.livekit_urls``: by default the configured
``FARM_LIVEKIT_URL`` only), else 400 LIVEKIT_URL_NOT_ALLOWED: workers never connect to a host the
caller picked.

The caller's LiveKit token is read without verification (the farm does not hold the user's LiveKit
secret; the LiveKit server checks it when the worker joins). Its attributes are public to the room,
so the ``api_secret`` the plugin copies there is never accepted as a credential here.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import pydantic
from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from farm.api import inputs
from farm.api.deps import Caller, Services, api_secret_header
from farm.api.livekit_urls import check_livekit_url
from farm.api.rooms import RoomStart, plugin_start, start_room
from farm.api.schemas import AGENT_ID_PATTERN, ERROR_RESPONSES, MODEL_NAME_PATTERN
from farm.kernel.domain import ModelKind, SessionState
from farm.kernel.errors import (
    Unauthorized,
    ValidationError,
)
from farm.tenancy.base import ApiKey
from farm.tenancy.runtime_keys import MAX_TTL_S, MIN_TTL_S, RuntimeKeyScope, is_runtime_key

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/runtime-tokens", tags=["bitHuman-compatible"], responses=ERROR_RESPONSES)


class RoomStarted(BaseModel):
    """The 200 body (the bitHuman plugin ignores it; it is for humans and other clients)."""

    status: str = "success"
    session_id: str
    state: SessionState
    model: ModelKind
    room_name: str
    identity: str
    created: bool


# ---------------------------------------------------------------- decoding


class RoomStartJson(BaseModel):
    """``POST /v1/runtime-tokens/request`` as JSON, as livekit-plugins-bithuman sends it.

    Give ``agent_id`` or ``image`` (or both: the image animated under the agent). Other fields the
    plugin sends are accepted and ignored.
    """

    model_config = ConfigDict(extra="allow")

    livekit_url: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^(wss?|https?)://",
        description="The LiveKit server the avatar joins; must be on the farm's allow-list "
        "(FARM_LIVEKIT_URL_ALLOWLIST, default FARM_LIVEKIT_URL), else 400 LIVEKIT_URL_NOT_ALLOWED.",
    )
    livekit_token: str = Field(
        min_length=1,
        max_length=16_384,
        description="LiveKit JWT for the avatar participant; it must grant a join to `room_name`.",
    )
    room_name: str = Field(min_length=1, max_length=256, description="The room named in `livekit_token`.")
    mode: Literal["cpu", "gpu"] | None = Field(None, description="cpu → essence, gpu → expression.")
    model: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        description="Wins over `mode`: a name of `GET /v1/models` (essence, essence-2, expression, "
        "expression-2 by default); one this farm does not serve is 400 MODEL_NOT_CONFIGURED.",
    )
    image: str | None = Field(
        None, min_length=1, description="Base64 PNG/JPEG face (or a data URL); image URLs are refused."
    )
    agent_id: str | None = Field(None, pattern=AGENT_ID_PATTERN, description="Agent code of yours.")


_JSON_FIELDS: dict[str, Any] = RoomStartJson.model_json_schema()["properties"]
_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["livekit_url", "livekit_token", "room_name"],
    "properties": {
        "livekit_url": _JSON_FIELDS["livekit_url"],
        "livekit_token": _JSON_FIELDS["livekit_token"],
        "room_name": _JSON_FIELDS["room_name"],
        "model": _JSON_FIELDS["model"]["anyOf"][0],
        "async_mode": {"type": "string", "description": "Ignored: the answer never waits for the join."},
        "avatar_image": {"type": "string", "format": "binary", "description": "PNG/JPEG face"},
        "avatar_image_url": {"type": "string", "description": "Refused: send the image bytes instead."},
        "avatar_id": {"type": "string", "pattern": AGENT_ID_PATTERN},
    },
}
_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": RoomStartJson.model_json_schema()},
            "multipart/form-data": {"schema": _FORM_SCHEMA},
            "application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA},
        },
    }
}


def _validated(doc: dict[str, Any]) -> RoomStartJson:
    """The known fields of ``doc`` (empty ones dropped: the plugin sends "" for unset fields), checked."""
    known = {k: v for k, v in doc.items() if k in RoomStartJson.model_fields and v is not None and v != ""}
    try:
        return RoomStartJson.model_validate(known)
    except pydantic.ValidationError as exc:
        raise ValidationError(inputs.describe_errors(exc.errors())) from exc


def _image_field(value: str | None) -> tuple[bytes | None, str | None]:
    if value is None:
        return None, None
    if value.startswith(("http://", "https://")):
        return None, value
    return inputs._b64(value, "image"), None


async def decode_request(request: Request, services: Services) -> RoomStart:
    """The JSON or the form variant as one RoomStart (the caller's token parsed once, here)."""
    settings = services.settings
    if inputs._is_form(request):
        form = await inputs._form(request, settings)
        image, _ = await inputs._file_or_b64(form, "avatar_image", settings.max_image_mb)
        doc: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        body = _validated({**doc, "agent_id": doc.get("avatar_id"), "mode": None, "image": None})
        image_url = doc.get("avatar_image_url") or None
    else:
        raw = await inputs._read_body(request, inputs.body_limit_bytes(settings))
        body = _validated(inputs._json_model(raw, _AnyObject).root)
        image, image_url = _image_field(body.image)
    check_livekit_url(body.livekit_url, settings)  # the allow-list: workers only join the farm's servers
    if image_url is not None:
        raise ValidationError("image URLs are not fetched by the farm: send the image bytes (base64 or file)")
    return plugin_start(
        body.livekit_url,
        body.livekit_token,
        body.room_name,
        model=body.model,
        mode=body.mode,
        image=image,
        agent_id=body.agent_id,
    )


class _AnyObject(BaseModel):
    """A JSON object body, fields checked by ``decode_request``."""

    model_config = {"extra": "allow"}

    @property
    def root(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# ---------------------------------------------------------------- the route


_bearer = HTTPBearer(auto_error=False, description="The form variant: `Authorization: Bearer <api secret>`.")


def _caller(
    services: Services, api_secret: str | None, bearer: HTTPAuthorizationCredentials | None
) -> tuple[ApiKey, RuntimeKeyScope | None]:
    """``api-secret`` (JSON variant) or ``Authorization: Bearer`` (form variant): a full key, or a
    runtime key (then with its scope)."""
    secret = api_secret or (bearer.credentials.strip() if bearer is not None else None)
    if not secret:
        raise Unauthorized("missing api-secret header or Authorization: Bearer token")
    if is_runtime_key(secret):
        scope = services.runtime_keys.verify(secret)
        return scope.as_key(), scope
    return services.keys.authenticate(secret), None


@router.post("/request", response_model=RoomStarted, openapi_extra=_REQUEST_BODY)
async def request_runtime_token(
    request: Request,
    services: Services,
    api_secret: Annotated[str | None, Security(api_secret_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> RoomStarted:
    """Start (or find) the avatar for a LiveKit room; the worker joins right after this answers."""
    # Redis calls and image work run on the thread pool: on the event loop they would hold every
    # other request (a hung Redis: up to api_redis_timeout_s each).
    key, scope = await run_in_threadpool(_caller, services, api_secret, bearer)
    request.state.tenant = key.tenant
    start = await decode_request(request, services)
    session, created = await run_in_threadpool(start_room, services, key, start, scope)
    join = session.livekit or start.join
    return RoomStarted(
        session_id=session.id,
        state=session.state,
        model=session.model,
        room_name=join.room,
        identity=join.identity,
        created=created,
    )


class MintRequest(BaseModel):
    """What a runtime key may do; every restriction is optional except its lifetime."""

    model_config = ConfigDict(extra="forbid")

    ttl_s: int = Field(3600, ge=MIN_TTL_S, le=MAX_TTL_S, description="Lifetime in seconds.")
    room_name: str | None = Field(None, min_length=1, max_length=256, description="Only this room.")
    agent_id: str | None = Field(None, pattern=r"^[A-Z][A-Z0-9]{9}$", description="Only this agent.")
    max_concurrency: int | None = Field(None, ge=1, le=100_000, description="Live sessions at most.")


class RuntimeKeyMinted(BaseModel):
    runtime_key: str = Field(description="Give this to the plugin as api_secret; shown once.")
    expires_at: float = Field(description="Unix time after which it is refused (401 KEY_EXPIRED).")
    room_name: str | None
    agent_id: str | None
    max_concurrency: int | None


@router.post("/mint", response_model=RuntimeKeyMinted)
def mint_runtime_key(body: MintRequest, key: Caller, services: Services) -> RuntimeKeyMinted:
    """A short-lived key that can only start room sessions for your tenant (safe to put in rooms)."""
    secret, scope = services.runtime_keys.mint(
        key,
        ttl_s=body.ttl_s,
        room=body.room_name,
        agent_id=body.agent_id,
        max_concurrency=body.max_concurrency,
    )
    return RuntimeKeyMinted(
        runtime_key=secret,
        expires_at=scope.expires_at,
        room_name=scope.room,
        agent_id=scope.agent_id,
        max_concurrency=scope.max_concurrency,
    )
