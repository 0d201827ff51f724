"""What routes depend on: the wired services (``app.state.farm``) and the authenticated key.

``create_app`` puts one ``FarmServices`` on ``app.state``; routes reach it through ``services()``,
so tests inject in-memory stores and production wires Redis, without globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from farm import names
from farm.blobs import BlobStore
from farm.errors import Unauthorized
from farm.sessions.base import AgentStore, ApiKey, KeyStore, SessionQueue, SessionStore, WorkerRegistry
from farm.sessions.warm import WarmRouter
from farm.settings import Settings

from .service import AgentService, BuildQueue, SessionService


@dataclass
class FarmServices:
    """Everything the routes use, wired once per app."""

    settings: Settings
    store: SessionStore
    queue: SessionQueue
    keys: KeyStore
    agents: AgentStore
    registry: WorkerRegistry
    builds: BuildQueue
    blobs: BlobStore
    ping: Callable[[], bool]
    queue_depth: Callable[[str], int] = lambda _queue: 0
    """Messages waiting on a shared queue (``LLEN`` of its Redis list); the autoscaling signal."""
    sessions: SessionService = field(init=False)
    agent_service: AgentService = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = SessionService(
            self.settings, self.store, self.queue, self.agents, self.blobs, router=WarmRouter(self.registry)
        )
        self.agent_service = AgentService(self.settings, self.agents, self.builds, self.blobs)


def services(request: Request) -> FarmServices:
    farm: FarmServices = request.app.state.farm
    return farm


_api_secret = APIKeyHeader(name=names.HEADER_API_SECRET, auto_error=False, description="Your API secret.")


def authenticate(
    request: Request,
    farm: Annotated[FarmServices, Depends(services)],
    secret: Annotated[str | None, Security(_api_secret)],
) -> ApiKey:
    """The caller's key; 401 UNAUTHORIZED for a missing, unknown or revoked ``api-secret``."""
    if not secret:
        raise Unauthorized(f"missing {names.HEADER_API_SECRET} header")
    key = farm.keys.authenticate(secret)
    request.state.tenant = key.tenant
    return key


Services = Annotated[FarmServices, Depends(services)]
Caller = Annotated[ApiKey, Depends(authenticate)]
