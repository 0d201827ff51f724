"""Room starts: the one use case behind every way an avatar is sent into a LiveKit room.

Two front doors decode their request into a ``RoomStart`` and call ``start_room``:

* ``POST /v1/runtime-tokens/request`` (``livekit-plugins-bithuman``): the caller's LiveKit token,
  parsed once here into the session's ``RoomJoin`` (the worker never decodes it again), a model
  name or mode, an agent id and/or a face image;
* ``POST /v1/rooms`` (the studio's "Try it"): an agent in a fresh room of the farm's own LiveKit
  server; the worker mints the avatar's token, the caller gets a subscribe-only one to watch.

``start_room`` validates (scope of a runtime key, model table, credits, the avatar), then creates
or finds the room session (one live session per room and avatar identity per tenant: the plugin's
retries get the same avatar back) and queues it. It never waits for the join. No READY worker for
the model's pool at all → 503 NO_CAPACITY; when every worker is full the session waits in the
queue for the next free slot.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from farm.infra import media
from farm.infra.livekit_tokens import parse_room_token
from farm.kernel import names
from farm.kernel.domain import AgentStatus, ModelKind, RoomJoin, Session, SessionState
from farm.kernel.errors import AgentNotReady, FarmError, LiveKitNotConfigured, NoCapacity, ValidationError
from farm.kernel.models import ModelEntry, default_for, resolve_model
from farm.kernel.settings import Settings
from farm.sessions.agents import is_agent_id
from farm.tenancy.base import ApiKey
from farm.tenancy.runtime_keys import RuntimeKeyScope

from .deps import FarmServices


@dataclass(frozen=True)
class RoomStart:
    """A decoded room start, whichever front door it came through."""

    join: RoomJoin
    model: str | None = None  # a name of the model table; None: from mode, else image/agent
    mode: str | None = None  # cpu | gpu (the plugin's JSON variant)
    image: bytes | None = None
    agent_id: str | None = None


def route_model(model: str | None, mode: str | None, has_image: bool, settings: Settings) -> ModelEntry:
    """``model`` (any name of the farm's model table) wins; else ``mode``; else an image means
    Expression (a face with no pack); default Essence (an agent is prepared as an Essence pack).
    A name the farm does not serve is 400 MODEL_NOT_CONFIGURED listing the names it serves."""
    if model:
        return resolve_model(model, settings)
    if mode:
        if mode not in ("cpu", "gpu"):
            raise ValidationError("mode must be 'cpu' or 'gpu'")
        return default_for(ModelKind.EXPRESSION if mode == "gpu" else ModelKind.ESSENCE, settings)
    return default_for(ModelKind.EXPRESSION if has_image else ModelKind.ESSENCE, settings)


def plugin_start(livekit_url: str, livekit_token: str, room_name: str, **request: object) -> RoomStart:
    """The plugin's request: its token parsed once (room, identity, publish-on-behalf agent)."""
    join = parse_room_token(livekit_url, livekit_token, room=room_name)
    return RoomStart(join=join, **request)  # type: ignore[arg-type]


def studio_start(settings: Settings, agent_id: str, model: str | None) -> RoomStart:
    """A fresh room on the farm's own LiveKit server (503 where the farm has none)."""
    if not (settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret):
        raise LiveKitNotConfigured(
            "this farm has no LiveKit server configured (FARM_LIVEKIT_URL, _API_KEY, _SECRET): "
            "use POST /v1/video/generate for an MP4 instead"
        )
    join = RoomJoin(room=f"studio-{secrets.token_hex(6)}", identity=names.DEFAULT_AVATAR_IDENTITY)
    return RoomStart(join=join, model=model, agent_id=agent_id)


def start_room(
    farm: FarmServices, key: ApiKey, start: RoomStart, scope: RuntimeKeyScope | None = None
) -> tuple[Session, bool]:
    """Validate, then create (or find) the room session and queue it; (session, created)."""
    join = start.join
    if scope is not None:
        scope.check(room=join.room, agent_id=start.agent_id)
    entry = route_model(start.model, start.mode, start.image is not None, farm.settings)
    farm.sessions.require_minute(key, entry.queue)  # out of credits: INSUFFICIENT_BALANCE, nothing stored
    image_ref = _avatar(farm, key, start, entry.queue)
    warm = farm.sessions.warm_worker(entry.queue, start.agent_id) if start.image is None else None
    session = Session(
        id=uuid.uuid4().hex,
        tenant=key.tenant,
        model=entry.queue,
        engine=entry.engine,
        model_name=entry.name,
        avatar_id=start.agent_id,
        image_ref=image_ref,
        livekit=join,
        routed_to=warm,
    )
    limit = farm.sessions.concurrency_limit(key)  # the key, else its plan, else the default
    if scope is not None and scope.max_concurrency is not None:
        limit = min(limit, scope.max_concurrency)
    session, created = farm.store.create(
        session, idempotency_scope=f"room:{join.room}:{join.identity}", max_live=limit
    )
    if not created:
        return session, False  # a retry or a repeated start: the same avatar, never a second one
    try:
        _check_capacity(farm, entry.queue)
    except FarmError as exc:
        farm.store.transition(session.id, SessionState.FAILED, reason=exc.code)
        raise
    farm.sessions.enqueue(session)
    return session, True


def _avatar(farm: FarmServices, key: ApiKey, start: RoomStart, model: ModelKind) -> str | None:
    """The image blob to animate, or the agent's; an Essence agent must have a READY pack.

    An image with an Essence model is fine: the worker builds (and keeps) a pack for that portrait.
    """
    if start.image is not None:
        media.validate_image(start.image, max_pixels=farm.settings.max_image_pixels)
        if start.agent_id is None:
            return farm.blobs.put(start.image, ".jpg")
    if start.agent_id is None:
        raise ValidationError("give agent_id or an image")
    if not is_agent_id(start.agent_id):
        raise ValidationError("agent_id must be an agent code like A78WKV4515")
    agent = farm.agents.get_for_tenant(key.tenant, start.agent_id)
    if model is ModelKind.ESSENCE and agent.status is not AgentStatus.READY:
        raise AgentNotReady(f"agent {agent.id} is {agent.status.value}, not ready")
    if start.image is not None:
        return farm.blobs.put(start.image, ".jpg")
    return agent.image_ref


def _check_capacity(farm: FarmServices, model: ModelKind) -> None:
    """503 when no READY worker serves ``model`` at all. Workers that are merely full are fine: the
    session waits in the queue for the next free slot (and the scaler counts it as demand)."""
    if not any(model.value in w.queues and w.state == "READY" for w in farm.registry.list()):
        raise NoCapacity(f"no {model.value} worker is running; retry shortly")
