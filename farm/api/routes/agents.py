"""``/v1/agents``: register an avatar (its Essence pack builds on queue ``build``) and read its state.

Shapes follow bitHuman's agent API (``success``, ``agent_id``, ``status``); ``/v1/agent/status/{id}``
is kept as an alias for clients written against bitHuman.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from farm.api import inputs
from farm.api.deps import Caller, Services
from farm.api.schemas import (
    ERROR_RESPONSES,
    AgentCreated,
    AgentData,
    AgentList,
    AgentView,
    CreateAgentJson,
    Pagination,
)
from farm.domain import AgentStatus

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
async def create_agent(request: Request, farm: Services, key: Caller) -> AgentCreated:
    """Register a portrait (or an animal/cartoon with ``mode: animal`` and its mouth) as an agent;
    status ``processing`` until its pack is built."""
    body = await inputs.agent_request(request, farm.settings)
    agent = farm.agent_service.create(key, body.image, body.options, model=body.model)
    return AgentCreated(agent_id=agent.id, status=agent.status.value)


@router.get("/v1/agents", response_model=AgentList)
def list_agents(
    farm: Services,
    key: Caller,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: AgentStatus | None = None,
) -> AgentList:
    """Your agents, newest first (bitHuman's ``limit`` ≤ 100, ``offset``, ``status`` filter)."""
    page, total = farm.agent_service.list(key, limit=limit, offset=offset, status=status)
    return AgentList(
        data=[AgentData.of(a) for a in page],
        pagination=Pagination(limit=limit, offset=offset, total=total, has_more=offset + len(page) < total),
    )


@router.get("/v1/agents/{agent_id}", response_model=AgentView)
def get_agent(agent_id: str, farm: Services, key: Caller) -> AgentView:
    """One of your agents: ``processing`` → ``ready`` | ``failed``."""
    return AgentView(data=AgentData.of(farm.agent_service.get(key, agent_id)))


@router.get("/v1/agent/status/{agent_id}", response_model=AgentView, include_in_schema=False)
def get_agent_status(agent_id: str, farm: Services, key: Caller) -> AgentView:
    """bitHuman-compatible alias of ``GET /v1/agents/{agent_id}``."""
    return AgentView(data=AgentData.of(farm.agent_service.get(key, agent_id)))
