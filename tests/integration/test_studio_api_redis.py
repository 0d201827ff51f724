"""The studio's API over real HTTP, Redis and a real Celery build worker: a photo's face preview is
found on the worker (never in the API process), and the Redis stores keep what the studio reads —
per-day usage, agents' last use, the farm's recent sessions, a tenant's own keys."""

from __future__ import annotations

import base64
import io
import time

import httpx
import pytest
import redis
from PIL import Image

from farm.kernel import names
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.errors import NotFound
from farm.kernel.settings import Settings
from farm.render.landmarks import sample_portrait
from farm.sessions.agents import RedisAgentStore
from farm.sessions.redis_store import RedisSessionStore
from farm.tenancy.api_keys import RedisKeyStore, revoke_tenant_key, tenant_keys
from farm.tenancy.metering import Metering, RedisLedger
from tests.integration.api_support import live_api
from tests.integration.conftest import StartWorker
from tests.support.helpers import wait_until

pytestmark = pytest.mark.integration


def _png(array: object) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")  # type: ignore[arg-type]
    return base64.b64encode(buf.getvalue()).decode()


def test_a_preview_is_answered_by_a_build_worker_over_the_queue(
    settings: Settings, redis_url: str, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    cfg = settings.model_copy(update={"redis_url": redis_url})
    start_worker(cfg, names.QUEUE_BUILD, concurrency=1)
    secret = RedisKeyStore(redis_client).create("tenant-a", "studio")[1]
    headers = {"api-secret": secret}
    with live_api(cfg) as api, httpx.Client(base_url=api.url, headers=headers, timeout=10) as http:
        queued = http.post("/v1/previews", json={"image": _png(sample_portrait())})
        assert queued.status_code == 202, queued.text

        def finished() -> dict[str, object] | None:
            body: dict[str, object] = http.get(f"/v1/previews/{queued.json()['preview_id']}").json()
            return body if body["status"] != "pending" else None

        done = wait_until(finished, deadline_s=30, what="the preview")
        assert done["status"] == "ready" and len(done["points"]) == 68  # type: ignore[arg-type]
        assert done["method"] in ("dlib", "haar-template", "mediapipe")


def test_the_redis_stores_keep_what_the_studio_reads(redis_client: redis.Redis) -> None:
    ledger = RedisLedger(redis_client)
    metering = Metering(ledger)
    ledger.set_plan("t", "free")
    metering.charge_once("t", "agent_build:A1", "agent_build", 50)
    (today, counters), *_ = reversed(metering.daily("t", 3))
    assert today == time.strftime("%Y-%m-%d", time.gmtime()) and counters == {
        "credits:agent_build": 50,
        "units:agent_build": 1,
    }
    assert redis_client.ttl(names.daily_usage_key("t", today)) > 0

    agents = RedisAgentStore(redis_client)
    agents.record_use("A000000001")
    assert set(agents.last_used(["A000000001", "A000000002"])) == {"A000000001"}

    store = RedisSessionStore(redis_client)
    for i in range(3):
        store.create(Session(id=f"{i:032x}", tenant=f"t{i}", model=ModelKind.ESSENCE))
        store.transition(f"{i:032x}", SessionState.ENDED, reason="test")
    store.create(Session(id=f"{9:032x}", tenant="t9", model=ModelKind.ESSENCE))  # live: not recent
    assert [s.id for s in store.recent(10)] == [f"{i:032x}" for i in (2, 1, 0)]

    keys = RedisKeyStore(redis_client)
    keys.create("t", "one")
    other, _ = keys.create("u", "theirs")
    with pytest.raises(NotFound):
        revoke_tenant_key(keys, "t", other.key_id)
    assert [k.name for k in tenant_keys(keys, "t")] == ["one"]
