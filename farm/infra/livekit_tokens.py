"""A caller's LiveKit token, read once: the room it grants, the identity, who it publishes for.

bitHuman-compatible starts bring a token minted by the agent's plugin (identity, room, attribute
``lk.publish_on_behalf``). The farm does not hold that LiveKit secret, so the token is decoded
*without* verification here (the LiveKit server checks it when the worker connects), once, by the
API; the worker receives the result (``RoomJoin``) and never decodes it again. Attributes are
readable by the whole room (the plugin copies its ``api_secret`` there): never treat them as
credentials. Only PyJWT: the API process stays free of the LiveKit FFI.
"""

from __future__ import annotations

from typing import Any

import jwt

from farm.kernel import names
from farm.kernel.domain import RoomJoin
from farm.kernel.errors import ValidationError


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


def parse_room_token(url: str, token: str, *, room: str | None = None) -> RoomJoin:
    """Room, identity and attributes of a caller's token (``room`` must agree when given)."""
    claims = decode_unverified(token)
    video = _mapping(claims.get("video"))
    token_room = str(video.get("room") or "")
    if not token_room or not video.get("roomJoin"):
        raise ValidationError("livekit_token grants no room join")
    if room and room != token_room:
        raise ValidationError("room_name does not match the room in livekit_token")
    identity = claims.get("sub")
    if not isinstance(identity, str) or not identity:
        raise ValidationError("livekit_token has no identity (sub)")
    attrs = _mapping(claims.get("attributes"))
    return RoomJoin(
        url=url,
        token=token,
        room=token_room,
        identity=identity,
        agent_identity=attrs.get(names.LK_ATTR_PUBLISH_ON_BEHALF) or None,
        agent_id=attrs.get("agent_id") or None,
    )
