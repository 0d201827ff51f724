"""``/v1/keys``: a tenant's API keys (list, create — the secret is shown once —, revoke) and ``GET
/v1/me`` (who a key is). Keys are the tenant's: another tenant's key is 404. Thin: decode, call, map.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from farm.api import inputs
from farm.api.deps import Caller, Services
from farm.api.schemas import ERROR_RESPONSES, json_body_doc
from farm.tenancy.api_keys import revoke_tenant_key, tenant_keys
from farm.tenancy.base import ApiKey

router = APIRouter(tags=["keys"], responses=ERROR_RESPONSES)

KeyIdPath = Annotated[
    str, PathParam(pattern=r"^key_[0-9a-f]{12}$", description="Key id, e.g. key_0123456789ab.")
]


class KeyView(BaseModel):
    key_id: str
    name: str
    created_at: float
    revoked: bool
    current: bool = Field(description="True for the key that made this request.")

    @classmethod
    def of(cls, key: ApiKey, caller: ApiKey) -> KeyView:
        return cls(
            key_id=key.key_id,
            name=key.name,
            created_at=key.created_at,
            revoked=key.revoked,
            current=key.key_id == caller.key_id,
        )


class KeyList(BaseModel):
    data: list[KeyView]


class CreateKeyJson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]+$", description="A label.")


class KeyCreated(KeyView):
    secret: str = Field(description="The API secret: shown this once, only its hash is stored.")


class Me(BaseModel):
    tenant: str
    key_id: str
    key_name: str
    admin: bool = Field(description="The tenant may read the operator views (FARM_ADMIN_TENANTS).")
    plan: str
    livekit_rooms: bool = Field(description="The farm has its own LiveKit server (POST /v1/rooms works).")


@router.get("/v1/me", response_model=Me)
def whoami(farm: Services, key: Caller) -> Me:
    """The calling key's tenant, name, plan and whether it sees the operator views."""
    plan = farm.metering.plan_of(key.tenant).name
    admin = key.tenant in farm.settings.admin_tenants
    settings = farm.settings
    rooms = bool(settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret)
    return Me(
        tenant=key.tenant, key_id=key.key_id, key_name=key.name, admin=admin, plan=plan, livekit_rooms=rooms
    )


@router.get("/v1/keys", response_model=KeyList)
def list_keys(farm: Services, key: Caller) -> KeyList:
    """Your tenant's API keys, oldest first (secrets are never shown again)."""
    return KeyList(data=[KeyView.of(k, key) for k in tenant_keys(farm.keys, key.tenant)])


@router.post(
    "/v1/keys", status_code=201, response_model=KeyCreated, openapi_extra=json_body_doc(CreateKeyJson)
)
async def create_key(request: Request, farm: Services, key: Caller) -> KeyCreated:
    """A new key of your tenant; its ``secret`` is in this answer only."""
    body: CreateKeyJson = await inputs.json_body(request, farm.settings, CreateKeyJson)
    created, secret = await run_in_threadpool(farm.keys.create, key.tenant, body.name)  # Redis
    return KeyCreated(**KeyView.of(created, key).model_dump(), secret=secret)


@router.delete("/v1/keys/{key_id}", response_model=KeyView)
def revoke_key(key_id: KeyIdPath, farm: Services, key: Caller) -> KeyView:
    """Revoke one of your tenant's keys (at once: its next request is 401)."""
    return KeyView.of(revoke_tenant_key(farm.keys, key.tenant, key_id), key)
