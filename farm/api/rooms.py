"""Start an agent in a room of the farm's own LiveKit server, for a person watching in a browser.

The studio's "Try it": no voice agent and no LiveKit credentials on the caller's side. The session
is a room session whose token the worker mints itself (``Session.livekit`` without a token, see
``farm.stream.livekit.token.join_for_session``); the caller gets a subscribe-only token to watch and
makes the avatar speak with ``POST /v1/agent/{id}/speak`` (the farm's TTS, over the speech topic) and
gesture with ``POST /v1/sessions/{id}/dynamics``. Credits, concurrency and capacity are checked as
for any room start. (To fold into the API's one room-start use case when it lands in the service
layer: only the token differs.)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from farm.kernel import names
from farm.kernel.domain import AgentStatus, ModelKind, Session
from farm.kernel.errors import AgentNotReady, LiveKitNotConfigured, NoCapacity
from farm.sessions.base import WorkerRegistry
from farm.tenancy.base import ApiKey

from .deps import FarmServices


@dataclass(frozen=True)
class StudioRoom:
    session: Session
    room: str
    livekit_url: str


def _check_capacity(registry: WorkerRegistry, model: ModelKind) -> None:
    if not any(model.value in w.queues and w.state == "READY" for w in registry.list()):
        raise NoCapacity(f"no {model.value} worker is running; retry shortly")


def start_studio_room(farm: FarmServices, key: ApiKey, agent_id: str, model: ModelKind) -> StudioRoom:
    """Queue a room session of ``agent_id`` in a fresh room on the farm's LiveKit server."""
    settings = farm.settings
    if not (settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret):
        raise LiveKitNotConfigured(
            "this farm has no LiveKit server configured (FARM_LIVEKIT_URL, _API_KEY, _SECRET): "
            "use POST /v1/video/generate for an MP4 instead"
        )
    agent = farm.agent_service.get(key, agent_id)
    if agent.status is not AgentStatus.READY:
        raise AgentNotReady(f"agent {agent.id} is {agent.status.value}, not ready")
    farm.sessions.require_minute(key, model)
    _check_capacity(farm.registry, model)
    room = f"studio-{secrets.token_hex(6)}"
    session = Session(
        id=secrets.token_hex(16),
        tenant=key.tenant,
        model=model,
        avatar_id=agent.id,
        image_ref=agent.image_ref,
        livekit={"room": room, "identity": names.DEFAULT_AVATAR_IDENTITY, "agent_identity": None},
        routed_to=farm.sessions.warm_worker(model, agent.id),
    )
    session, _ = farm.store.create(session, max_live=farm.sessions.concurrency_limit(key))
    farm.sessions.enqueue(session)
    return StudioRoom(session, room, settings.livekit_url)
