"""High availability: the farm runs on Redis Sentinel and survives the primary's death.

A real primary + replica + three sentinels (``tests.support.valkey.SentinelSet``); the API and a real
Celery worker reach Redis only through the sentinels (``FARM_REDIS_URL=redis+sentinel://…``). The
primary is SIGKILLed while sessions stream: the sentinels promote the replica, the API answers again,
the worker keeps its process and reconnects, and every session ends (resumed where its lease lapsed
during the failover). The figures (seconds until the API answers, sessions lost, workers lost) are
recorded as JSON (``tests.support.figures``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.client import AvatarSession
from farm.infra.blobs import BlobStore
from farm.infra.redis_conn import connect
from farm.kernel.settings import Settings
from farm.tenancy.api_keys import RedisKeyStore
from tests.integration.api_support import live_api
from tests.integration.conftest import StartWorker
from tests.integration.test_worker_sessions import ready_agent
from tests.support.figures import StatusPoller, record
from tests.support.helpers import wait_until, wav_bytes
from tests.support.valkey import SentinelSet

pytestmark = pytest.mark.integration

SLOW = {"FARM_TEST_FRAME_DELAY_S": "0.03"}
SESSIONS = 3


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    sentinels = SentinelSet(tmp_path / "sentinel").start()
    yield sentinels
    sentinels.stop()


def test_the_farm_fails_over_to_the_replica_with_no_session_or_worker_lost(
    settings: Settings, sentinel_set: SentinelSet, start_worker: StartWorker, tmp_path: Path
) -> None:
    cfg = settings.model_copy(update={"redis_url": sentinel_set.url, "health_port": 0})
    worker = start_worker(cfg, "essence", concurrency=SESSIONS, env=SLOW)
    secret = RedisKeyStore(connect(sentinel_set.url)).create("t1", "failover")[1]
    agent_id = ready_agent(cfg, BlobStore(cfg.blob_dir).put(b"portrait-bytes", ".png"))
    with (
        live_api(cfg) as api,
        AvatarSession(api_url=api.url, api_secret=secret, request_timeout_s=10, max_retries=0) as farm,
    ):
        ids = [
            farm.create_session(audio=wav_bytes(6.0), avatar_id=agent_id).session_id for _ in range(SESSIONS)
        ]
        wait_until(
            lambda: all(farm.get_session(i).status == "STREAMING" for i in ids),
            deadline_s=60,
            what="all sessions to stream",
        )

        old_primary = sentinel_set.primary()
        old_primary.kill()
        killed_at = time.monotonic()
        poller = StatusPoller(api.url, secret, f"/v1/sessions/{ids[0]}")
        wait_until(poller.ok, deadline_s=60, interval_s=0.05, what="the API to answer")
        api_back_s = time.monotonic() - killed_at
        wait_until(lambda: sentinel_set.primary() is not old_primary, deadline_s=30, what="a promotion")

        finals = [farm.wait_session(i, deadline_s=120) for i in ids]
        all_ended_s = time.monotonic() - killed_at
        resumed = sum(1 for f in finals if "QUEUED" in [h["state"] for h in f.history[1:]])
        submitted_at = time.monotonic()
        after = farm.create_session(audio=wav_bytes(0.6), avatar_id=agent_id)
        after_final = farm.wait_session(after.session_id, deadline_s=60)
        new_session_s = time.monotonic() - submitted_at

    lost = [f.session_id for f in finals if f.status != "ENDED"]
    workers_lost = int(worker.proc.poll() is not None)
    record(
        "redis-sentinel-failover",
        {
            "sentinels": 3,
            "down_after_ms": sentinel_set.down_after_ms,
            "sessions": SESSIONS,
            "seconds_until_api_answers": round(api_back_s, 3),
            "api_answers_from_kill_to_first_200": dict(poller.statuses),  # by status; only 503 is right
            "seconds_until_every_session_ended": round(all_ended_s, 3),  # 6 s clips, resumed from the start
            "seconds_a_new_session_took_after_failover": round(new_session_s, 3),  # a 0.6 s clip
            "sessions_lost": len(lost),
            "sessions_resumed": resumed,
            "workers_lost": workers_lost,
        },
        tmp_path,
    )
    assert lost == [], [(f.session_id, f.status, f.raw.get("failure")) for f in finals]
    assert workers_lost == 0 and "Unrecoverable error" not in worker.log()
    assert after_final.status == "ENDED"
