"""``/v1/agents``: register an avatar (its Essence pack builds on queue ``build``) and read its state.

Shapes follow bitHuman's agent API (``success``, ``agent_id``, ``status``); ``/v1/agent/status/{id}``
is kept as an alias for clients written against bitHuman.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from farm.api import inputs
from farm.api.deps import Caller, Services
from farm.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from farm.api.idempotency import remember, replay
from farm.api.schemas import (
    ERROR_RESPONSES,
    AgentCreated,
    AgentData,
    AgentDeleted,
    AgentIdPath,
    AgentList,
    AgentView,
    CreateAgentJson,
    Limit,
    Offset,
    Pagination,
    SpeakJson,
    SpeakResult,
    UpdateAgentJson,
    json_body_doc,
)
from farm.kernel.domain import AgentStatus
from farm.kernel.errors import ValidationError

SearchQuery = Annotated[
    str | None, Query(max_length=80, description="Part of an agent id or name (any case).")
]

router = APIRouter(tags=["agents"], responses=ERROR_RESPONSES)

_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "PNG/JPEG portrait"},
        "model": {"type": "string", "enum": ["essence", "expression"]},
        "mode": {"type": "string", "enum": ["person", "animal"]},
        "framing": {"type": "string", "enum": ["face", "full"]},
        "crop_scale": {"type": "number", "minimum": 1.5, "maximum": 20},
        "size": {"type": "integer", "minimum": 128, "maximum": 1024},
        "mouth_box": {"type": "string", "description": "JSON [x0, y0, x1, y1] (animal mode)"},
        "mouth_points": {"type": "string", "description": "JSON [[x, y], ...] (animal mode)"},
        "eyes": {"type": "string", "description": "JSON list of up to two [x, y] or [x0, y0, x1, y1]"},
    },
}
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": CreateAgentJson.model_json_schema()},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
    }
}


@router.post("/v1/agents", status_code=201, response_model=AgentCreated, openapi_extra=_CREATE_BODY)
async def create_agent(request: Request, farm: Services, key: Caller) -> Response:
    """Register a portrait (or an animal/cartoon with ``mode: animal`` and its mouth) as an agent;
    status ``processing`` until its pack is built. Honours ``Idempotency-Key`` (the first answer is
    replayed: no second build, no second charge)."""
    idem = request.headers.get(IDEMPOTENCY_HEADER)
    replayed = await run_in_threadpool(replay, farm.replays, key.tenant, "agents.create", idem, 201)
    if replayed is not None:
        return replayed
    body = await inputs.agent_request(request, farm.settings)

    def create() -> Response:  # image checks, blob write, Redis, broker: off the event loop
        agent = farm.agent_service.create(
            key,
            body.image,
            body.options,
            model=body.model,
            system_prompt=body.system_prompt,
            voice=body.voice,
        )
        created = AgentCreated(agent_id=agent.id, status=agent.status.value).model_dump_json()
        return remember(farm.replays, key.tenant, "agents.create", idem, body=created, status=201)

    return await run_in_threadpool(create)


@router.get("/v1/agents", response_model=AgentList)
def list_agents(  # noqa: PLR0917 (FastAPI passes query parameters by keyword)
    farm: Services,
    key: Caller,
    limit: Limit = 50,
    offset: Offset = 0,
    status: AgentStatus | None = None,
    q: SearchQuery = None,
) -> AgentList:
    """Your agents, newest first (bitHuman's ``limit`` ≤ 100, ``offset``, ``status`` filter; ``q``
    finds an id or name fragment, any case)."""
    page, total, used = farm.agent_service.list(key, limit=limit, offset=offset, status=status, search=q)
    return AgentList(
        data=[AgentData.of(a, used.get(a.id)) for a in page],
        pagination=Pagination(limit=limit, offset=offset, total=total, has_more=offset + len(page) < total),
    )


@router.get("/v1/agents/{agent_id}", response_model=AgentView)
def get_agent(agent_id: AgentIdPath, farm: Services, key: Caller) -> AgentView:
    """One of your agents: ``processing`` → ``ready`` | ``failed``."""
    return AgentView(data=AgentData.of(farm.agent_service.get(key, agent_id)))


@router.get(
    "/v1/agents/{agent_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "A JPEG at most 160 px on a side."}},
)
def get_thumbnail(agent_id: AgentIdPath, farm: Services, key: Caller) -> Response:
    """A small JPEG of the agent's portrait (the studio's cards)."""
    jpeg = farm.agent_service.thumbnail(key, agent_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/v1/agent/status/{agent_id}", response_model=AgentView, include_in_schema=False)
def get_agent_status(agent_id: AgentIdPath, farm: Services, key: Caller) -> AgentView:
    """bitHuman-compatible alias of ``GET /v1/agents/{agent_id}``."""
    return AgentView(data=AgentData.of(farm.agent_service.get(key, agent_id)))


async def _update(request: Request, farm: Services, key: Caller, agent_id: str) -> AgentView:
    body: UpdateAgentJson = await inputs.json_body(request, farm.settings, UpdateAgentJson)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if not changes:
        raise ValidationError("give name, system_prompt and/or voice")
    if changes.get("voice"):  # an unknown voice is refused here, not at speak time (TTS: off the loop)
        await run_in_threadpool(farm.text.speak, "ok", voice=changes["voice"])
    updated = await run_in_threadpool(farm.agent_service.update, key, agent_id, changes)
    return AgentView(data=AgentData.of(updated))


@router.patch("/v1/agents/{agent_id}", response_model=AgentView, openapi_extra=json_body_doc(UpdateAgentJson))
async def update_agent(agent_id: AgentIdPath, request: Request, farm: Services, key: Caller) -> AgentView:
    """Set the agent's ``name``, ``system_prompt`` and/or ``voice`` (null clears)."""
    return await _update(request, farm, key, agent_id)


@router.post("/v1/agent/{agent_id}", response_model=AgentView, openapi_extra=json_body_doc(UpdateAgentJson))
async def update_agent_bithuman(
    agent_id: AgentIdPath, request: Request, farm: Services, key: Caller
) -> AgentView:
    """bitHuman-compatible ``POST /v1/agent/{code}`` ``{system_prompt}``."""
    return await _update(request, farm, key, agent_id)


@router.delete("/v1/agents/{agent_id}", response_model=AgentDeleted)
def delete_agent(agent_id: AgentIdPath, farm: Services, key: Caller) -> AgentDeleted:
    """Delete the agent; 409 CONFLICT while any live session uses it."""
    farm.agent_service.delete(key, agent_id, farm.store)
    return AgentDeleted(agent_id=agent_id)


@router.delete("/v1/agent/{agent_id}", response_model=AgentDeleted, include_in_schema=False)
def delete_agent_bithuman(agent_id: AgentIdPath, farm: Services, key: Caller) -> AgentDeleted:
    """bitHuman-compatible alias of ``DELETE /v1/agents/{agent_id}``."""
    farm.agent_service.delete(key, agent_id, farm.store)
    return AgentDeleted(agent_id=agent_id)


@router.post("/v1/agent/{agent_id}/speak", response_model=SpeakResult, openapi_extra=json_body_doc(SpeakJson))
async def speak(agent_id: AgentIdPath, request: Request, farm: Services, key: Caller) -> SpeakResult:
    """The avatar in a live room says ``message`` as given; 404 when the agent has no live room session."""
    body: SpeakJson = await inputs.json_body(request, farm.settings, SpeakJson)
    rooms = await run_in_threadpool(farm.text.speak_live, key, agent_id, body.message, body.room_id)  # TTS
    return SpeakResult(delivered_to_rooms=rooms)
