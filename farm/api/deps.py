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

from farm.infra.blobs import BlobStore
from farm.infra.speak import MemorySpeakBus, SpeakBus
from farm.infra.speech import Responder, SpeechSynthesizer, responder_from, synthesizer_from
from farm.kernel import names
from farm.kernel.errors import KeyOutOfScope, Unauthorized
from farm.kernel.settings import Settings
from farm.sessions.base import AgentStore, SessionQueue, SessionStore, WorkerRegistry
from farm.sessions.previews import MemoryPreviewStore, PreviewStore
from farm.sessions.warm import WarmRouter
from farm.tenancy.base import ApiKey, KeyStore
from farm.tenancy.metering import MemoryLedger, Metering
from farm.tenancy.plans import FAILED_AUTH_PER_MIN
from farm.tenancy.runtime_keys import RuntimeKeySigner, is_runtime_key, memory_signing_key

from .idempotency import MemoryReplayStore, ReplayStore
from .previews import PreviewService
from .ratelimit import AUTH_FAILED_TIER, MemoryRateLimiter, RateLimiter, limit_request, tier_of
from .service import AgentService, BuildQueue, SessionService
from .text import TextService


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
    synthesizer: SpeechSynthesizer | None = None  # None: from settings (espeak-ng or OpenAI-compatible)
    responder: Responder | None = None  # None: from settings (echo or OpenAI-compatible chat)
    replays: ReplayStore = field(default_factory=MemoryReplayStore)
    speak_bus: SpeakBus = field(default_factory=MemorySpeakBus)
    metering: Metering = field(default_factory=lambda: Metering(MemoryLedger()))
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    runtime_keys: RuntimeKeySigner = field(default_factory=lambda: RuntimeKeySigner(memory_signing_key()))
    queue_depth: Callable[[str], int] = lambda _queue: 0
    """Messages waiting on a shared queue (``LLEN`` of its Redis list); the autoscaling signal."""
    previews: PreviewStore = field(default_factory=MemoryPreviewStore)
    sessions: SessionService = field(init=False)
    previews_service: PreviewService = field(init=False)
    agent_service: AgentService = field(init=False)
    text: TextService = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = SessionService(
            self.settings,
            self.store,
            self.queue,
            self.agents,
            self.blobs,
            router=WarmRouter(self.registry),
            metering=self.metering,
        )
        self.agent_service = AgentService(self.settings, self.agents, self.builds, self.blobs, self.metering)
        self.previews_service = PreviewService(self.settings, self.previews, self.blobs, self.builds)
        self.text = TextService(
            self.settings,
            self.sessions,
            self.agents,
            self.synthesizer or synthesizer_from(self.settings),
            self.responder or responder_from(self.settings),
            self.store,
            self.speak_bus,
        )


def services(request: Request) -> FarmServices:
    farm: FarmServices = request.app.state.farm
    return farm


api_secret_header = APIKeyHeader(
    name=names.HEADER_API_SECRET, auto_error=False, description="Your API secret (or a runtime key)."
)


def authenticate(
    request: Request,
    farm: Annotated[FarmServices, Depends(services)],
    secret: Annotated[str | None, Security(api_secret_header)],
) -> ApiKey:
    """The caller's key; 401 UNAUTHORIZED for a missing, unknown or revoked ``api-secret``.

    Also the rate limit: one token of the tenant's bucket for this route's tier (429 RATE_LIMITED
    when empty), and for a failed authentication one of the client address's ``auth_failed`` bucket.
    """
    if secret and is_runtime_key(secret):
        raise KeyOutOfScope("a runtime key only starts room sessions (POST /v1/runtime-tokens/request)")
    try:
        if not secret:
            raise Unauthorized(f"missing {names.HEADER_API_SECRET} header")
        key = farm.keys.authenticate(secret)
    except Unauthorized:
        address = request.client.host if request.client else "unknown"
        limit_request(request, farm.limiter, f"ip:{address}", AUTH_FAILED_TIER, FAILED_AUTH_PER_MIN)
        raise
    request.state.tenant = key.tenant
    rates = farm.metering.plan_of(key.tenant).requests_per_min
    if rates is not None:
        tier = tier_of(request.method, getattr(request.scope.get("route"), "path", request.url.path))
        limit_request(request, farm.limiter, f"tenant:{key.tenant}", tier.value, rates[tier])
    return key


Services = Annotated[FarmServices, Depends(services)]
Caller = Annotated[ApiKey, Depends(authenticate)]
