"""Workers ride out a Redis outage: Redis is SIGKILLed while workers hold sessions, stays down past the
sessions' lease TTL, and comes back on the same port with the same (append-only) data.

Every worker keeps its process, reconnects to the broker and consumes again; every session it held is
resumed (re-queued by the reaper once its lease lapsed) or failed with a reason, never lost or left
live; a session submitted after the outage runs. The API's answers during the outage are recorded
(``tests.support.figures``), not asserted: mapping them to 503 is the API's part.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.infra.redis_conn import connect
from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.settings import Settings
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import RedisWorkerRegistry
from farm.tenancy.api_keys import RedisKeyStore
from tasks.producer import CelerySessionQueue, producer_app
from tests.integration.api_support import live_api
from tests.integration.conftest import StartWorker, WorkerProcess
from tests.integration.test_worker_sessions import new_session, wait_terminal
from tests.support.figures import StatusPoller, record
from tests.support.helpers import wait_until
from tests.support.valkey import ValkeyNode, data_node

pytestmark = pytest.mark.integration

SLOW = {"FARM_TEST_FRAME_DELAY_S": "0.03"}  # 150 frames of a 6 s clip take about 4.5 s


@pytest.fixture
def redis_node(tmp_path: Path) -> Iterator[ValkeyNode]:
    """A Redis of this test only (fixed port, append-only data), so the test may kill it."""
    node = data_node(tmp_path / "redis").start()
    yield node
    node.kill()


@pytest.fixture
def outage_settings(settings: Settings, redis_node: ValkeyNode) -> Settings:
    return settings.model_copy(update={"redis_url": redis_node.url, "health_port": 0})


def submit(settings: Settings, store: RedisSessionStore, seconds: float) -> Session:
    session = new_session(settings, store, ModelKind.ESSENCE, seconds=seconds)
    CelerySessionQueue(producer_app(settings)).submit(
        RunSessionMessage(session_id=session.id, model=session.model)
    )
    return session


def all_streaming(store: RedisSessionStore, sessions: list[Session]) -> bool:
    return all(store.get(s.id).state is SessionState.STREAMING for s in sessions)


def registered_ready(settings: Settings, workers: list[WorkerProcess]) -> bool:
    registry = RedisWorkerRegistry(connect(str(settings.redis_url)))
    ready = {info.pid for info in registry.list() if info.state == "READY"}
    return all(w.pid in ready for w in workers)


def test_workers_keep_their_processes_and_sessions_resume_after_redis_is_killed_and_restarted(
    outage_settings: Settings, redis_node: ValkeyNode, start_worker: StartWorker, tmp_path: Path
) -> None:
    cfg = outage_settings
    workers = [start_worker(cfg, "essence", env=SLOW) for _ in range(2)]
    pids = [w.pid for w in workers]
    store = RedisSessionStore(connect(redis_node.url))
    sessions = [submit(cfg, store, seconds=6.0) for _ in range(4)]  # every slot of both workers
    wait_until(lambda: all_streaming(store, sessions), deadline_s=60, what="all sessions to stream")

    secret = RedisKeyStore(connect(redis_node.url)).create("t1", "outage")[1]
    with live_api(cfg) as api:
        poller = StatusPoller(api.url, secret, f"/v1/sessions/{sessions[0].id}")
        redis_node.kill()
        killed_at = time.monotonic()
        for worker in workers:
            wait_until(
                lambda w=worker: "Connection to broker lost" in w.log(), deadline_s=30, what="the outage"
            )
        poller.poll_for(cfg.lease_ttl_s + 1.0)  # the outage's length: past the TTL, every lease lapses
        redis_node.start()
        restarted_at = time.monotonic()
        wait_until(poller.ok, deadline_s=30, what="the API to answer again")
        api_back_s = time.monotonic() - restarted_at

    finals = [wait_terminal(store, s.id, deadline_s=120) for s in sessions]
    all_ended_s = time.monotonic() - restarted_at
    wait_until(lambda: registered_ready(cfg, workers), deadline_s=30, what="both workers READY again")
    after = submit(cfg, store, seconds=0.6)
    after_final = wait_terminal(store, after.id, deadline_s=60)

    lost = [f.id for f in finals if f.state is not SessionState.ENDED and not (f.failure or {}).get("code")]
    workers_lost = sum(1 for w in workers if w.proc.poll() is not None or "Unrecoverable error" in w.log())
    record(
        "redis-kill-restart",
        {
            "sessions": len(sessions),
            "workers": len(workers),
            "outage_s": round(restarted_at - killed_at, 3),
            "api_answers_from_kill_to_first_200": dict(poller.statuses),  # by status; only 503 is right
            "seconds_after_restart_until_the_api_answers": round(api_back_s, 3),
            "seconds_after_restart_until_every_session_ended": round(all_ended_s, 3),
            "sessions_ended": sum(1 for f in finals if f.state is SessionState.ENDED),
            "sessions_resumed": sum(
                1 for f in finals if SessionState.QUEUED in [h.state for h in f.history[1:]]
            ),
            "sessions_failed_with_reason": sum(
                1 for f in finals if f.state is SessionState.FAILED and f.id not in lost
            ),
            "sessions_lost": len(lost),
            "workers_lost": workers_lost,
        },
        tmp_path,
    )
    assert lost == [] and workers_lost == 0
    assert [f.state for f in finals] == [SessionState.ENDED] * len(sessions), [f.failure for f in finals]
    assert store.orphaned() == []
    assert [w.pid for w in workers] == pids
    assert after_final.state is SessionState.ENDED


def test_a_redis_blip_shorter_than_the_lease_leaves_sessions_running_on_their_worker(
    outage_settings: Settings, redis_node: ValkeyNode, start_worker: StartWorker, tmp_path: Path
) -> None:
    """Redis is back before any lease lapses: the sessions' tasks end after the broker reconnected,
    so their acks reach channels of the closed connection (the path ``tasks.broker`` guards)."""
    cfg = outage_settings.model_copy(update={"lease_ttl_s": 4.0})
    worker = start_worker(cfg, "essence", env=SLOW)
    store = RedisSessionStore(connect(redis_node.url))
    sessions = [submit(cfg, store, seconds=6.0) for _ in range(2)]
    wait_until(lambda: all_streaming(store, sessions), deadline_s=60, what="both sessions to stream")

    redis_node.kill()
    wait_until(lambda: "Connection to broker lost" in worker.log(), deadline_s=30, what="the outage")
    redis_node.start()

    finals = [wait_terminal(store, s.id, deadline_s=120) for s in sessions]
    after = submit(cfg, store, seconds=0.6)
    after_final = wait_terminal(store, after.id, deadline_s=60)
    record(
        "redis-blip",
        {
            "sessions": len(sessions),
            "sessions_ended": sum(1 for f in finals if f.state is SessionState.ENDED),
            "sessions_resumed": sum(1 for f in finals if f.attempts > 1),
            "workers_lost": int(worker.proc.poll() is not None),
        },
        tmp_path,
    )
    assert [f.state for f in finals] == [SessionState.ENDED] * len(sessions), [f.failure for f in finals]
    assert worker.proc.poll() is None and "Unrecoverable error" not in worker.log()
    assert after_final.state is SessionState.ENDED
