"""Exact charges with real workers: a text-in video whose worker is SIGKILLed mid-render is re-queued,
finished by another worker, and charged exactly once (its started minutes were paid when queued;
the re-run pays nothing)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from farm.infra.redis_conn import connect
from farm.kernel import names
from farm.kernel.domain import Session, SessionState
from farm.kernel.settings import Settings
from farm.sessions.redis_store import RedisSessionStore
from farm.tenancy.api_keys import RedisKeyStore
from farm.tenancy.metering import RedisLedger
from tests.integration.api_support import LiveApi, live_api
from tests.integration.conftest import StartWorker, wait_until
from tests.integration.test_worker_sessions import wait_terminal
from tests.unit.api_support import b64, png_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
def fast_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(
        update={
            "redis_url": redis_url,
            "lease_ttl_s": 1.5,
            "lease_renew_s": 0.3,
            "reaper_interval_s": 0.3,
            "heartbeat_s": 0.3,
        }
    )


@pytest.fixture
def api(fast_settings: Settings) -> Iterator[LiveApi]:
    with live_api(fast_settings) as server:
        yield server


def test_a_video_whose_worker_crashes_is_charged_exactly_once(
    api: LiveApi, fast_settings: Settings, start_worker: StartWorker, redis_client: redis.Redis
) -> None:
    slow = {"FARM_TEST_FRAME_DELAY_S": "0.02"}  # the render takes seconds: time to kill its worker
    workers = [start_worker(fast_settings, names.QUEUE_EXPRESSION, env=slow) for _ in range(2)]
    RedisLedger(redis_client).set_plan("acme", "creator")
    secret = RedisKeyStore(redis_client).create("acme", "ci")[1]
    headers = {"api-secret": secret}
    text = "This sentence is long enough that its render is still running when the worker dies."
    created = httpx.post(
        f"{api.url}/v1/video/generate",
        json={"image": b64(png_bytes()), "text": text, "model": "expression"},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    sid = created.json()["session_id"]
    store = RedisSessionStore(connect(str(fast_settings.redis_url)))

    def streaming() -> Session | None:
        current = store.get(sid)
        return current if current.state is SessionState.STREAMING else None

    first = wait_until(streaming, deadline_s=30, what="the session to stream")
    holder = next(w for w in workers if w.info is not None and w.info.worker_id == first.worker_id)
    holder.kill()
    final = wait_terminal(store, sid, deadline_s=60)
    assert (final.state, final.attempts) == (SessionState.ENDED, 2), final.failure

    usage = httpx.get(f"{api.url}/v1/usage", headers=headers).json()
    assert usage["by_model"]["expression"] == {
        "minutes": 1,
        "credits": 4,
        "credits_per_minute": 4,
        "minutes_left": (1_800 - 4) // 4,
    }
    assert usage["balance"] == 1_800 - 4
