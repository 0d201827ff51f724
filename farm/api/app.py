"""The API's app factory (dependencies injected) and its production composition root.

``create_app`` takes every collaborator explicitly: unit tests pass in-memory stores and a
recording queue; ``build_app`` wires Redis and the Celery producer from one Settings object. This
module is the one place in ``farm`` allowed to import the Celery layer (``tasks.producer``).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from farm.infra.blobs import BlobStore
from farm.infra.speak import MemorySpeakBus, SpeakBus
from farm.infra.speech import Responder, SpeechSynthesizer
from farm.kernel.settings import Settings
from farm.sessions.base import AgentStore, SessionQueue, SessionStore, WorkerRegistry
from farm.sessions.previews import MemoryPreviewStore, PreviewStore
from farm.tenancy.base import KeyStore
from farm.tenancy.metering import MemoryLedger, Metering
from farm.tenancy.runtime_keys import RuntimeKeySigner

from .deps import FarmServices
from .errors import install_error_handlers
from .idempotency import MemoryReplayStore, ReplayStore
from .metrics import ApiMetrics, install_middleware
from .openapi import install_openapi
from .ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, install_rate_headers
from .routes import agents as agent_routes
from .routes import dynamics as dynamics_routes
from .routes import health as health_routes
from .routes import keys as key_routes
from .routes import models as model_routes
from .routes import operators as operator_routes
from .routes import previews as preview_routes
from .routes import rooms as room_routes
from .routes import runtime_tokens as runtime_token_routes
from .routes import sessions as session_routes
from .routes import studio as studio_routes
from .routes import text as text_routes
from .routes import usage as usage_routes
from .routes import viewer as viewer_routes
from .service import BuildQueue

DESCRIPTION = """\
Render farm for real-time talking avatars. Every `/v1` call needs the `api-secret` header.
Errors share one envelope: `{"error": {"code", "message", "httpStatus"}, "status": "error", "status_code"}`.
"""


def create_app(
    settings: Settings,
    *,
    store: SessionStore,
    queue: SessionQueue,
    keys: KeyStore,
    agents: AgentStore,
    registry: WorkerRegistry,
    builds: BuildQueue,
    blobs: BlobStore | None = None,
    ping: Callable[[], bool] = lambda: True,
    replays: ReplayStore | None = None,
    synthesizer: SpeechSynthesizer | None = None,
    responder: Responder | None = None,
    speak_bus: SpeakBus | None = None,
    metering: Metering | None = None,
    limiter: RateLimiter | None = None,
    runtime_keys: RuntimeKeySigner | None = None,
    queue_depth: Callable[[str], int] = lambda _queue: 0,
    previews: PreviewStore | None = None,
) -> FastAPI:
    """An app over the given collaborators. ``ping`` backs ``/readyz`` (Redis reachable)."""
    app = FastAPI(
        title="Avatar farm API", version="1", description=DESCRIPTION, docs_url=None, redoc_url=None
    )
    install_offline_docs(app)
    app.state.farm = FarmServices(
        settings=settings,
        store=store,
        queue=queue,
        keys=keys,
        agents=agents,
        registry=registry,
        builds=builds,
        blobs=blobs or BlobStore(settings.blob_dir),
        ping=ping,
        synthesizer=synthesizer,
        responder=responder,
        replays=replays or MemoryReplayStore(),
        speak_bus=speak_bus or MemorySpeakBus(),
        metering=metering or Metering(MemoryLedger()),
        limiter=limiter or MemoryRateLimiter(),
        queue_depth=queue_depth,
        previews=previews or MemoryPreviewStore(),
    )
    if runtime_keys is not None:
        app.state.farm.runtime_keys = runtime_keys
    metrics = ApiMetrics()
    install_error_handlers(app)
    install_rate_headers(app)
    install_middleware(app, metrics)
    for area in (
        text_routes,
        usage_routes,
        session_routes,
        agent_routes,
        dynamics_routes,
        health_routes,
        runtime_token_routes,
        viewer_routes,
        model_routes,
        key_routes,
        preview_routes,
        operator_routes,
        room_routes,
        studio_routes,
    ):
        app.include_router(area.router)
    app.add_api_route("/metrics", metrics.render, methods=["GET"], include_in_schema=False)
    install_openapi(app)
    return app


DOCS_ASSETS = "/docs-assets"


def install_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) from the ``swagger-ui-bundle`` package's files: no CDN, works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def build_app(settings: Settings) -> FastAPI:
    """The production app: Redis stores and registry, Celery producer (``tasks.producer``)."""
    from farm.api.idempotency import RedisReplayStore
    from farm.infra.redis_conn import connect, ping
    from farm.infra.speak import RedisSpeakBus
    from farm.sessions.agents import RedisAgentStore
    from farm.sessions.previews import RedisPreviewStore
    from farm.sessions.redis_store import RedisSessionStore
    from farm.sessions.registry import RedisWorkerRegistry
    from farm.tenancy.api_keys import RedisKeyStore
    from farm.tenancy.metering import RedisLedger
    from farm.tenancy.runtime_keys import redis_signing_key
    from tasks.producer import CeleryBuildQueue, CelerySessionQueue, producer_app

    if settings.redis_url is None:
        raise ValueError("build_app needs settings.redis_url (the entrypoint resolves it)")
    # A hung Redis (paused, partitioned) answers 503 within api_redis_timeout_s, not redis-py's 2 × 5 s.
    client = connect(
        settings.redis_url, socket_timeout_s=settings.api_redis_timeout_s, retry_on_timeout=False
    )
    celery = producer_app(settings)
    return create_app(
        settings,
        store=RedisSessionStore(client, idempotency_ttl_s=settings.max_session_s),
        queue=CelerySessionQueue(celery),
        keys=RedisKeyStore(client),
        agents=RedisAgentStore(client),
        registry=RedisWorkerRegistry(client),
        builds=CeleryBuildQueue(celery),
        ping=lambda: ping(client),
        replays=RedisReplayStore(client),
        speak_bus=RedisSpeakBus(settings.redis_url),
        metering=Metering(RedisLedger(client)),
        limiter=RedisRateLimiter(client),
        runtime_keys=RuntimeKeySigner(redis_signing_key(client)),
        queue_depth=lambda queue: int(client.llen(queue)),
        previews=RedisPreviewStore(client),
    )
