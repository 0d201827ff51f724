"""``/v1/dynamics``: an agent's gesture catalogue and previews, triggers, and keyword rules.

Triggers are **fire-and-forget**: the API publishes one ``DynamicsMessage`` on the dynamics topic and
waits up to ``ack_wait_s`` (100 ms) for the reached worker processes to say how many of their
sessions accepted it. ``count_complete: false`` means some worker had not answered in time; its
sessions may still play the gesture. A worker whose subscription was down misses the trigger.

Mounting: ``app.include_router(dynamics.router)``. The services come from ``app.state.dynamics``
(set it with ``install_dynamics``); when absent they are built from ``settings.redis_url`` (Redis bus
and rules) on first use, or in memory when no Redis URL is configured.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool

from farm.api.deps import Caller, Services
from farm.api.inputs import parse_json
from farm.api.routing import flat_routes
from farm.api.schemas import ERROR_RESPONSES, AgentIdPath, GesturePath, SessionIdPath
from farm.dynamics.base import DynamicsBus, broadcast
from farm.dynamics.catalogue import EXPRESSION_GESTURES, catalogue_data, preview_path
from farm.dynamics.rules import MAX_BODY_BYTES, DynamicsConfig, RulesStore, validate_config
from farm.kernel.contracts import DynamicsMessage
from farm.kernel.domain import Agent, ModelKind, Session
from farm.kernel.errors import Conflict, NotFound, PayloadTooLarge, UnknownGesture, ValidationError

router = APIRouter(tags=["dynamics"], responses=ERROR_RESPONSES)
_CATALOGUE_PATH = "/v1/dynamics/{agent_id}"


@dataclass
class DynamicsServices:
    """What the dynamics routes use besides the farm's stores."""

    bus: DynamicsBus
    rules: RulesStore
    ack_wait_s: float = 0.1


def install_dynamics(app: FastAPI, dynamics: DynamicsServices) -> None:
    """Wire explicit dynamics services (tests, composition roots) and mount the routes."""
    app.state.dynamics = dynamics
    if not any(route.path == _CATALOGUE_PATH for route in flat_routes(app.routes)):
        app.include_router(router)


_default_lock = threading.Lock()


def dynamics_services(request: Request) -> DynamicsServices:
    """``app.state.dynamics``, built once from the farm's settings when nobody installed one."""
    state = request.app.state
    with _default_lock:
        if getattr(state, "dynamics", None) is None:
            state.dynamics = _default_services(state.farm.settings.redis_url)
        services: DynamicsServices = state.dynamics
    return services


def _default_services(redis_url: str | None) -> DynamicsServices:
    if redis_url is None:
        from farm.dynamics.memory import MemoryDynamicsBus
        from farm.dynamics.rules import MemoryRulesStore

        return DynamicsServices(bus=MemoryDynamicsBus(), rules=MemoryRulesStore())
    from farm.dynamics.redis_bus import RedisDynamicsBus
    from farm.dynamics.rules import RedisRulesStore
    from farm.infra.redis_conn import connect

    return DynamicsServices(bus=RedisDynamicsBus(redis_url), rules=RedisRulesStore(connect(redis_url)))


Dynamics = Annotated[DynamicsServices, Depends(dynamics_services)]


class TriggerBody(BaseModel):
    """``{"action": "<gesture>"}``; bitHuman's extra ``identity`` and ``timestamp`` are ignored."""

    action: str = Field(min_length=1, max_length=64)


def _base_url(request: Request, public_url: str | None) -> str:
    return (public_url or str(request.base_url)).rstrip("/")


def _check_action(action: str, gestures: list[str] | tuple[str, ...]) -> None:
    if action not in gestures:
        valid = ", ".join(sorted(gestures)) or "none"
        raise UnknownGesture(f"unknown gesture {action!r}; valid gestures: {valid}")


def session_gestures(session: Session, agent: Agent | None) -> tuple[str, ...]:
    """The gestures a session can play: its agent's clips, or Expression's motion programs."""
    if agent is not None and agent.gestures:
        return tuple(agent.gestures)
    return EXPRESSION_GESTURES if session.model == ModelKind.EXPRESSION else ()


@router.get(_CATALOGUE_PATH)
def get_catalogue(agent_id: AgentIdPath, request: Request, farm: Services, key: Caller) -> dict[str, Any]:
    """The agent's gestures and preview URLs; an agent without gestures answers ``url: null``."""
    agent = farm.agents.get_for_tenant(key.tenant, agent_id)
    return {
        "success": True,
        "data": catalogue_data(agent, _base_url(request, farm.settings.public_url)),
    }


@router.get("/v1/dynamics/{agent_id}/previews/{gesture}.mp4", response_class=FileResponse)
def get_preview(agent_id: AgentIdPath, gesture: GesturePath, farm: Services, key: Caller) -> FileResponse:
    """A short MP4 of one gesture, written when the agent's pack was built."""
    agent = farm.agents.get_for_tenant(key.tenant, agent_id)
    if gesture not in agent.gestures:
        raise NotFound(f"agent {agent_id} has no gesture {gesture!r}")
    path = preview_path(farm.settings.data_dir, agent_id, gesture)
    if not path.is_file():
        raise NotFound(f"the preview of {gesture!r} is not built")
    return FileResponse(path, media_type="video/mp4")


@router.post("/v1/dynamics/{agent_id}/trigger")
def trigger_agent(
    agent_id: AgentIdPath, body: TriggerBody, farm: Services, dynamics: Dynamics, key: Caller
) -> dict[str, Any]:
    """Play a gesture on every live session of the agent, on every worker (best-effort count)."""
    agent = farm.agents.get_for_tenant(key.tenant, agent_id)
    _check_action(body.action, agent.gestures)
    message = DynamicsMessage(tenant=key.tenant, action=body.action, agent_id=agent.id)
    summary = broadcast(dynamics.bus, message, wait_s=dynamics.ack_wait_s)
    return {"success": True, "data": {"agent_id": agent.id, "action": body.action, **summary.body()}}


@router.post("/v1/sessions/{session_id}/dynamics")
def trigger_session(
    session_id: SessionIdPath, body: TriggerBody, farm: Services, dynamics: Dynamics, key: Caller
) -> dict[str, Any]:
    """Play a gesture on one live session; ``animation_triggered`` is null when no worker answered."""
    session = farm.store.get_for_tenant(key.tenant, session_id)
    if not session.live:
        raise Conflict(f"session {session_id} is {session.state}, not live")
    agent = farm.agents.get(session.avatar_id) if session.avatar_id else None
    _check_action(body.action, session_gestures(session, agent))
    message = DynamicsMessage(
        tenant=key.tenant, action=body.action, session_id=session.id, agent_id=session.avatar_id
    )
    summary = broadcast(dynamics.bus, message, wait_s=dynamics.ack_wait_s)
    outcomes = [s for ack in summary.acks for s in ack.sessions if s.session_id == session.id]
    data: dict[str, Any] = {"session_id": session.id, "action": body.action, **summary.body()}
    data["animation_triggered"] = outcomes[0].animation_triggered if outcomes else None
    data["reason"] = outcomes[0].reason if outcomes else None
    return {"success": True, "data": data}


@router.get("/v1/dynamics/{agent_id}/rules")
def get_rules(agent_id: AgentIdPath, farm: Services, dynamics: Dynamics, key: Caller) -> dict[str, Any]:
    """The agent's keyword rules and cooldown overrides (empty when none were stored)."""
    agent = farm.agents.get_for_tenant(key.tenant, agent_id)
    return {"success": True, "data": {"agent_id": agent.id, **dynamics.rules.get(agent.id).model_dump()}}


@router.put(
    "/v1/dynamics/{agent_id}/rules",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DynamicsConfig.model_json_schema()}},
        }
    },
)
async def put_rules(
    agent_id: AgentIdPath, request: Request, farm: Services, dynamics: Dynamics, key: Caller
) -> dict[str, Any]:
    """Replace the agent's rules: ``{"rules": {phrase: gesture}, "cooldowns_s"?: {gesture: s}}``
    or a bare ``{phrase: gesture}`` mapping. Sessions started afterwards use them."""
    agent = await run_in_threadpool(farm.agents.get_for_tenant, key.tenant, agent_id)  # Redis: off the loop
    config = validate_config(parse_rules_body(await _read_body(request)), agent.gestures)
    await run_in_threadpool(dynamics.rules.put, agent.id, config)
    return {"success": True, "data": {"agent_id": agent.id, **config.model_dump()}}


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"rule sets are at most {MAX_BODY_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"rule sets are at most {MAX_BODY_BYTES} bytes")
    return body


def parse_rules_body(raw: bytes) -> DynamicsConfig:
    """Decode either body form into a DynamicsConfig (not yet validated against gestures)."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    if not isinstance(body.get("rules"), dict):
        body = {"rules": body}
    try:
        return DynamicsConfig.model_validate(body)
    except PydanticValidationError as exc:
        raise ValidationError(
            "rules map phrases to gesture names; cooldowns_s maps gestures to seconds"
        ) from exc
