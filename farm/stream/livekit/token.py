"""Room credentials of a session: the caller's LiveKit token, or one the farm mints.

bitHuman-compatible sessions bring a token minted by the agent's plugin, parsed once by the API
(``farm.infra.livekit_tokens``) into the session's ``RoomJoin``. Farm-started rooms (the studio)
get a token minted here with the farm's own LiveKit key: agent kind, least grants (join one room,
publish, publish data) and a TTL bounded by the session's maximum duration.
"""

from __future__ import annotations

import datetime

from livekit import api

from farm.kernel import names
from farm.kernel.domain import RoomJoin
from farm.kernel.errors import ValidationError
from farm.kernel.settings import Settings

TOKEN_TTL_MARGIN_S = 300.0  # the join may wait in a queue before the session clock starts


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


def join_for_session(livekit: RoomJoin, settings: Settings) -> RoomJoin:
    """``Session.livekit`` made ready to connect: the farm's URL when it names none, and a token the
    farm mints with its own key when the session brought none (the caller's token, parsed once by the
    API, is used as it is: nothing is decoded here)."""
    url = livekit.url or settings.livekit_url
    if not url:
        raise ValidationError("no LiveKit URL for this session (livekit_url or FARM_LIVEKIT_URL)")
    token = livekit.token or mint_token(
        settings, room=livekit.room, identity=livekit.identity, agent_identity=livekit.agent_identity
    )
    return livekit.model_copy(update={"url": url, "token": token})
