"""Workers die and fail: a SIGKILLed worker's session is re-queued and finished by another worker
(never left STREAMING with a dead lease); a worker whose prewarm fails is ERROR and takes nothing."""

from __future__ import annotations

import math
import signal
import time

import av
import pytest

from farm.contracts import RunSessionMessage
from farm.domain import ModelKind, Session, SessionState
from farm.redis_conn import connect
from farm.render.base import SAMPLES_PER_FRAME
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import RedisWorkerRegistry
from farm.settings import Settings
from tasks.producer import CelerySessionQueue, producer_app
from tests.integration.conftest import StartWorker, wait_until
from tests.integration.test_worker_sessions import new_session, wait_terminal

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


def test_a_killed_workers_session_is_requeued_and_finished_by_another_worker(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    slow = {"FARM_TEST_FRAME_DELAY_S": "0.02"}  # 100 frames take about 2 s to render
    workers = [start_worker(fast_settings, "essence", env=slow) for _ in range(2)]
    store = RedisSessionStore(connect(str(fast_settings.redis_url)))
    session = new_session(fast_settings, store, ModelKind.ESSENCE, seconds=4.0)
    CelerySessionQueue(producer_app(fast_settings)).submit(
        RunSessionMessage(session_id=session.id, model=session.model)
    )

    def streaming() -> Session | None:
        current = store.get(session.id)
        return current if current.state is SessionState.STREAMING else None

    first = wait_until(streaming, deadline_s=30, what="the session to stream")
    holder = next(w for w in workers if w.info is not None and w.info.worker_id == first.worker_id)
    survivor = next(w for w in workers if w is not holder)
    holder.kill()

    final = wait_terminal(store, session.id, deadline_s=60)
    states = [h.state for h in final.history]
    assert final.state is SessionState.ENDED, final.failure
    assert states.count(SessionState.QUEUED) == 2, states  # created, then re-queued by the reaper
    assert states[-4:] == [
        SessionState.STARTING,
        SessionState.STREAMING,
        SessionState.ENDING,
        SessionState.ENDED,
    ]
    assert survivor.info is not None and final.worker_id == survivor.info.worker_id
    assert final.attempts == 2
    assert store.orphaned() == []
    assert final.output is not None
    with av.open(final.output) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(frames - math.ceil(4.0 * 16_000 / SAMPLES_PER_FRAME)) <= 1


def test_a_session_whose_workers_keep_dying_fails_with_lease_expired(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    cfg = fast_settings.model_copy(update={"max_attempts": 1})
    doomed = start_worker(cfg, "essence", env={"FARM_TEST_FRAME_DELAY_S": "0.05"})
    store = RedisSessionStore(connect(str(cfg.redis_url)))
    session = new_session(cfg, store, ModelKind.ESSENCE, seconds=4.0)
    CelerySessionQueue(producer_app(cfg)).submit(
        RunSessionMessage(session_id=session.id, model=session.model)
    )
    wait_until(lambda: store.get(session.id).state is SessionState.STREAMING, deadline_s=30, what="streaming")
    doomed.kill()
    reaper_host = start_worker(cfg, "expression")  # any live worker runs the fleet's reaper
    assert reaper_host.info is not None
    final = wait_terminal(store, session.id, deadline_s=30)
    assert final.state is SessionState.FAILED
    assert final.failure is not None and final.failure["code"] == "LEASE_EXPIRED"


def test_a_worker_whose_prewarm_fails_is_error_and_takes_no_session(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    broken = start_worker(
        fast_settings, "essence", env={"FARM_TEST_PREWARM_ERROR": "weights missing"}, wait_state="ERROR"
    )
    assert broken.info is not None
    assert broken.info.error is not None and "weights missing" in broken.info.error
    assert broken.info.free_slots == 0
    store = RedisSessionStore(connect(str(fast_settings.redis_url)))
    session = new_session(fast_settings, store, ModelKind.ESSENCE, seconds=0.4)
    CelerySessionQueue(producer_app(fast_settings)).submit(
        RunSessionMessage(session_id=session.id, model=session.model)
    )

    until = time.monotonic() + 3.0  # long enough for a consuming worker to have claimed it many times
    while time.monotonic() < until:
        assert store.get(session.id).state is SessionState.QUEUED
        time.sleep(0.1)
    registry = RedisWorkerRegistry(connect(str(fast_settings.redis_url)))
    assert [w.state for w in registry.list() if w.pid == broken.pid] == ["ERROR"]
    assert "consumers cancelled: prewarm failed" in broken.log()
    assert "farm.session.run" not in broken.log().split("consumers cancelled")[1]  # received nothing

    healthy = start_worker(fast_settings, "essence")
    final = wait_terminal(store, session.id, deadline_s=30)
    assert final.state is SessionState.ENDED
    assert healthy.info is not None and final.worker_id == healthy.info.worker_id


def test_a_worker_stopped_mid_session_hands_it_back_after_the_grace_period(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    cfg = fast_settings.model_copy(update={"drain_grace_s": 0.3})
    slow = {"FARM_TEST_FRAME_DELAY_S": "0.02"}
    workers = [start_worker(cfg, "essence", env=slow) for _ in range(2)]
    store = RedisSessionStore(connect(str(cfg.redis_url)))
    session = new_session(cfg, store, ModelKind.ESSENCE, seconds=4.0)
    message = RunSessionMessage(session_id=session.id, model=session.model)
    CelerySessionQueue(producer_app(cfg)).submit(message)

    def streaming() -> Session | None:
        current = store.get(session.id)
        return current if current.state is SessionState.STREAMING else None

    first = wait_until(streaming, deadline_s=30, what="the session to stream")
    holder = next(w for w in workers if w.info is not None and w.info.worker_id == first.worker_id)
    survivor = next(w for w in workers if w is not holder)
    holder.proc.send_signal(signal.SIGTERM)  # a pod being scaled down: warm shutdown

    final = wait_terminal(store, session.id, deadline_s=60)
    assert final.state is SessionState.ENDED, final.failure
    assert "worker draining: handed back" in [h.reason for h in final.history]
    assert survivor.info is not None and final.worker_id == survivor.info.worker_id
    assert holder.proc.wait(20) == 0  # it exits cleanly once its session is handed back
