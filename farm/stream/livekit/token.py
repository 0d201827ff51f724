"""Room credentials of a session: the caller's LiveKit token, or one the farm mints.

bitHuman-compatible sessions bring a token minted by the agent's plugin (identity, room, attribute
``lk.publish_on_behalf``); the farm does not hold that LiveKit secret, so the token is decoded
*without* verification and the LiveKit server checks it at ``connect``. Its attributes (including
``api_secret``, which the plugin copies there) are readable by the whole room: never treat them as
credentials. Native sessions get a token minted with the farm's own LiveKit key: agent kind, least
grants (join one room, publish, publish data; no subscribe: the avatar reads only data streams) and
a TTL bounded by the session's maximum duration.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import jwt
from livekit import api

from farm.kernel import names
from farm.kernel.errors import ValidationError
from farm.kernel.settings import Settings

TOKEN_TTL_MARGIN_S = 300.0  # the join may wait in a queue before the session clock starts


@dataclass(frozen=True, slots=True)
class RoomJoin:
    """Everything needed to join a room as the avatar participant."""

    url: str
    token: str
    room: str
    identity: str
    agent_identity: str | None  # lk.publish_on_behalf: the only participant we take audio from
    agent_id: str | None = None  # the avatar id the caller asked for (attribute agent_id), if any


def decode_unverified(token: str) -> dict[str, Any]:
    """The claims of a LiveKit JWT, signature unchecked (the LiveKit server verifies at connect)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise ValidationError("livekit_token is not a JWT") from exc
    if not isinstance(claims, dict):
        raise ValidationError("livekit_token has no claims object")
    return claims


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def join_from_token(url: str, token: str, *, room: str | None = None) -> RoomJoin:
    """Room, identity and attributes from a caller's token (``room`` must agree when given)."""
    claims = decode_unverified(token)
    video = _mapping(claims.get("video"))
    token_room = str(video.get("room") or "")
    if not token_room or not video.get("roomJoin"):
        raise ValidationError("livekit_token grants no room join")
    if room and room != token_room:
        raise ValidationError("room_name does not match the room in livekit_token")
    identity = str(claims.get("sub") or "")
    if not identity:
        raise ValidationError("livekit_token has no identity (sub)")
    attrs = _mapping(claims.get("attributes"))
    agent = attrs.get(names.LK_ATTR_PUBLISH_ON_BEHALF) or None
    agent_id = attrs.get("agent_id") or None
    return RoomJoin(
        url=url, token=token, room=token_room, identity=identity, agent_identity=agent, agent_id=agent_id
    )


def mint_token(
    settings: Settings,
    *,
    room: str,
    identity: str = names.DEFAULT_AVATAR_IDENTITY,
    name: str | None = None,
    agent_identity: str | None = None,
    ttl_s: float | None = None,
) -> str:
    """A farm-minted avatar token (needs ``livekit_api_key`` / ``livekit_api_secret``)."""
    if not settings.livekit_api_key or not settings.livekit_api_secret:
        raise ValidationError("the farm has no LiveKit API key configured (FARM_LIVEKIT_API_KEY/SECRET)")
    ttl = min(ttl_s or settings.max_session_s, settings.max_session_s) + TOKEN_TTL_MARGIN_S
    grants = api.VideoGrants(
        # can_subscribe stays on: data packets (RPC, byte streams) arrive over the subscriber transport
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
    )
    token = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_kind("agent")
        .with_identity(identity)
        .with_name(name or identity)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=ttl))
    )
    if agent_identity:
        token = token.with_attributes({names.LK_ATTR_PUBLISH_ON_BEHALF: agent_identity})
    return token.to_jwt()


def join_for_session(livekit: dict[str, Any], settings: Settings) -> RoomJoin:
    """The RoomJoin of a session from ``Session.livekit``: {url, token} or {room, identity, agent_identity}.

    With a token, the token is authoritative (room, identity, publish-on-behalf). Without one, the
    farm mints a token for ``room`` with its own key, for ``settings.livekit_url`` unless a url is given.
    """
    token = livekit.get("token")
    url = livekit.get("url") or settings.livekit_url
    if not url:
        raise ValidationError("no LiveKit URL for this session (livekit_url or FARM_LIVEKIT_URL)")
    if token:
        return join_from_token(url, token, room=livekit.get("room"))
    room = livekit.get("room")
    if not room:
        raise ValidationError("a room session needs a room name or a token")
    identity = livekit.get("identity") or names.DEFAULT_AVATAR_IDENTITY
    agent = livekit.get("agent_identity")
    minted = mint_token(settings, room=room, identity=identity, agent_identity=agent)
    return RoomJoin(url=url, token=minted, room=room, identity=identity, agent_identity=agent)
