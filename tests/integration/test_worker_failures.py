"""Workers die and fail: a SIGKILLed worker's session is re-queued and finished by another worker
(never left STREAMING with a dead lease); a worker whose prewarm fails is ERROR and takes nothing."""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import av
import pytest

from farm.infra.redis_conn import connect
from farm.kernel import names
from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.settings import Settings
from farm.render.base import SAMPLES_PER_FRAME
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import RedisWorkerRegistry
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


@pytest.fixture
def production_leases(settings: Settings, redis_url: str) -> Settings:
    """The production lease, liveness and reaper settings: the resume time is the real one."""
    defaults = Settings.model_validate({})
    fields = ("lease_ttl_s", "lease_renew_s", "reaper_interval_s", "liveness_ttl_s", "liveness_renew_s")
    return settings.model_copy(
        update={"redis_url": redis_url, "heartbeat_s": 0.5, **{f: getattr(defaults, f) for f in fields}}
    )


def _claimed_by(session: Session, worker_id: str) -> float:
    claims = [h for h in session.history if h.state is SessionState.ASSIGNED and h.worker_id == worker_id]
    return claims[-1].at


def _streaming_again(session: Session) -> float:
    return [h.at for h in session.history if h.state is SessionState.STREAMING][-1]


def test_a_killed_workers_session_resumes_within_its_liveness_ttl_not_its_lease_ttl(
    production_leases: Settings, start_worker: StartWorker
) -> None:
    """kill -9 of the holder, twice: each session resumes on a survivor, exact frames, fenced."""
    cfg = production_leases
    slow = {"FARM_TEST_FRAME_DELAY_S": "0.04"}  # 100 frames take about 4 s: the kill lands mid-render
    workers = [start_worker(cfg, "essence", env=slow) for _ in range(3)]
    client = connect(str(cfg.redis_url))
    store = RedisSessionStore(client)
    queue = CelerySessionQueue(producer_app(cfg))
    measured = []
    for _ in range(2):
        session = new_session(cfg, store, ModelKind.ESSENCE, seconds=4.0)
        queue.submit(RunSessionMessage(session_id=session.id, model=session.model))

        def streaming(sid: str = session.id) -> Session | None:
            current = store.get(sid)
            return current if current.state is SessionState.STREAMING else None

        first = wait_until(streaming, deadline_s=30, what="the session to stream")
        holder = next(w for w in workers if w.info is not None and w.info.worker_id == first.worker_id)
        killed_at = time.time()
        holder.kill()
        workers.remove(holder)

        final = wait_terminal(store, session.id, deadline_s=60)
        assert final.state is SessionState.ENDED, final.failure
        assert final.worker_id in {w.info.worker_id for w in workers if w.info is not None}
        assert final.attempts == 2
        assert client.get(names.session_fence_key(session.id)) == "2"  # one claim per holder, no third
        assert final.output is not None
        with av.open(final.output) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == math.ceil(4.0 * 16_000 / SAMPLES_PER_FRAME)
        measured.append(
            {
                "claimed_s": round(_claimed_by(final, final.worker_id) - killed_at, 3),
                "streaming_s": round(_streaming_again(final) - killed_at, 3),
            }
        )
    assert any("lease revoked: its worker is gone" in w.log() for w in workers)
    print(json.dumps({"bench": "kill9_resume", "lease_ttl_s": cfg.lease_ttl_s, "kills": measured}))


def test_a_frozen_holder_that_wakes_after_its_session_moved_on_stops_without_touching_it(
    production_leases: Settings, start_worker: StartWorker
) -> None:
    """SIGSTOP (a wedged process, liveness thread included), resume elsewhere, SIGCONT mid-stream:
    the woken holder finds its lease revoked and stops; the survivor's output is the one kept."""
    cfg = production_leases
    slow = {"FARM_TEST_FRAME_DELAY_S": "0.04"}
    workers = [start_worker(cfg, "essence", env=slow) for _ in range(2)]
    store = RedisSessionStore(connect(str(cfg.redis_url)))
    session = new_session(cfg, store, ModelKind.ESSENCE, seconds=4.0)
    message = RunSessionMessage(session_id=session.id, model=session.model)
    CelerySessionQueue(producer_app(cfg)).submit(message)
    first = wait_until(
        lambda: (s := store.get(session.id)).state is SessionState.STREAMING and s,
        deadline_s=30,
        what="the session to stream",
    )
    frozen = next(w for w in workers if w.info is not None and w.info.worker_id == first.worker_id)
    survivor = next(w for w in workers if w is not frozen)
    assert survivor.info is not None
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(
            lambda: (s := store.get(session.id)).state is SessionState.STREAMING and s.attempts == 2,
            deadline_s=30,
            what="the session to stream on the survivor",
        )
    finally:
        frozen.proc.send_signal(signal.SIGCONT)  # wakes while the survivor still streams
    wait_until(lambda: "lease lost, stopping" in frozen.log(), deadline_s=30, what="the woken holder to stop")
    final = wait_terminal(store, session.id, deadline_s=60)
    assert final.state is SessionState.ENDED, final.failure
    assert final.worker_id == survivor.info.worker_id
    assert final.output is not None
    with av.open(final.output) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == math.ceil(4.0 * 16_000 / SAMPLES_PER_FRAME)
    assert not list(Path(final.output).parent.glob("*.part"))  # the woken holder's part was discarded


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


def test_a_queued_session_whose_message_was_lost_is_resubmitted_and_runs(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    cfg = fast_settings.model_copy(update={"queue_resubmit_s": 1.0, "queue_deadline_s": 120.0})
    worker = start_worker(cfg, "essence")
    store = RedisSessionStore(connect(str(cfg.redis_url)))
    session = new_session(cfg, store, ModelKind.ESSENCE, seconds=0.4)  # stored QUEUED, never sent
    final = wait_terminal(store, session.id, deadline_s=30)
    assert final.state is SessionState.ENDED, final.failure
    assert worker.info is not None and final.worker_id == worker.info.worker_id
    assert "queued session re-submitted: its message may be lost" in worker.log()


def test_a_duplicate_message_for_a_session_is_a_harmless_no_op(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    worker = start_worker(fast_settings, "essence")
    client = connect(str(fast_settings.redis_url))
    store = RedisSessionStore(client)
    session = new_session(fast_settings, store, ModelKind.ESSENCE, seconds=0.4)
    queue = CelerySessionQueue(producer_app(fast_settings))
    message = RunSessionMessage(session_id=session.id, model=session.model)
    queue.submit(message)
    queue.submit(message)
    final = wait_terminal(store, session.id, deadline_s=30)
    wait_until(lambda: "duplicate delivery" in worker.log(), deadline_s=30, what="the duplicate delivery")
    assert final.state is SessionState.ENDED
    assert [h.state for h in final.history].count(SessionState.ASSIGNED) == 1
    assert client.get(names.session_fence_key(session.id)) == "1"


def test_a_session_nobody_takes_fails_at_its_queue_deadline_and_frees_its_slot(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    cfg = fast_settings.model_copy(update={"queue_resubmit_s": 0.5, "queue_deadline_s": 2.0})
    start_worker(cfg, "expression")  # runs the fleet's reaper; nobody serves the essence queue
    store = RedisSessionStore(connect(str(cfg.redis_url)))
    session = new_session(cfg, store, ModelKind.ESSENCE, seconds=0.4)
    message = RunSessionMessage(session_id=session.id, model=session.model)
    CelerySessionQueue(producer_app(cfg)).submit(message)
    assert store.count_live(session.tenant) >= 1
    final = wait_terminal(store, session.id, deadline_s=30)
    assert final.state is SessionState.FAILED
    assert final.failure is not None and final.failure["code"] == "QUEUE_TIMEOUT"
    assert session.id not in {s.id for s in store.live_for_tenant(session.tenant)}
