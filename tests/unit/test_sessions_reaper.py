"""The reaper re-queues sessions whose worker died, fails them after max_attempts, one pass at a time."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
import redis

from farm.infra.embedded_redis import EmbeddedRedis
from farm.infra.procs import free_port
from farm.infra.redis_conn import connect
from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.errors import BackendUnavailable, IllegalTransition, LeaseLost
from farm.sessions.base import LeaseScan
from farm.sessions.liveness import Heart, MemoryWorkerLiveness
from farm.sessions.memory import MemorySessionStore
from farm.sessions.reaper import LocalReaperLock, QueuePolicy, Reaper, RedisReaperLock, RedisRestartWatch


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ListQueue:
    def __init__(self) -> None:
        self.messages: list[RunSessionMessage] = []

    def submit(self, message: RunSessionMessage) -> None:
        self.messages.append(message)


def streaming_session(store: MemorySessionStore, model: ModelKind = ModelKind.ESSENCE) -> str:
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=model))
    lease = store.claim(session.id, "w1", ttl_s=5)
    assert lease is not None
    store.transition(session.id, SessionState.STARTING, lease=lease)
    store.transition(session.id, SessionState.STREAMING, lease=lease)
    return session.id


@pytest.mark.unit
def test_a_dead_workers_session_is_requeued_on_its_model_queue() -> None:
    clock = Clock()
    store, queue = MemorySessionStore(clock=clock), ListQueue()
    sid = streaming_session(store, ModelKind.EXPRESSION)
    reaper = Reaper(store, queue, LocalReaperLock(), max_attempts=3)
    assert reaper.run_once().requeued == []
    clock.now += 10
    report = reaper.run_once()
    assert report.requeued == [sid]
    assert store.get(sid).state is SessionState.QUEUED
    assert [(m.session_id, m.model) for m in queue.messages] == [(sid, ModelKind.EXPRESSION)]
    assert store.orphaned() == []


@pytest.mark.unit
def test_a_session_that_keeps_losing_workers_fails_with_lease_expired() -> None:
    clock = Clock()
    store, queue = MemorySessionStore(clock=clock), ListQueue()
    sid = streaming_session(store)
    reaper = Reaper(store, queue, LocalReaperLock(), max_attempts=2)
    clock.now += 10
    reaper.run_once()
    assert store.claim(sid, "w2", ttl_s=5) is not None  # second attempt, whose worker dies too
    clock.now += 10
    report = reaper.run_once()
    assert report.failed == [sid]
    final = store.get(sid)
    assert final.state is SessionState.FAILED
    assert final.failure is not None and final.failure["code"] == "LEASE_EXPIRED"
    assert len(queue.messages) == 1


@pytest.mark.unit
def test_an_ending_session_without_a_worker_fails() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE))
    lease = store.claim(session.id, "w1", ttl_s=5)
    assert lease is not None
    for state in (SessionState.STARTING, SessionState.STREAMING, SessionState.ENDING):
        store.transition(session.id, state, lease=lease)
    clock.now += 10
    assert Reaper(store, ListQueue(), LocalReaperLock(), max_attempts=3).run_once().failed == [session.id]


@pytest.mark.integration
def test_only_one_reaper_pass_runs_per_interval(redis_client: redis.Redis) -> None:
    first = RedisReaperLock(redis_client, "w1", ttl_s=30)
    second = RedisReaperLock(redis_client, "w2", ttl_s=30)
    assert first.acquire()
    assert not second.acquire()
    store = MemorySessionStore()
    assert not Reaper(store, ListQueue(), second, max_attempts=3).run_once().ran


# ---------------------------------------------------------------- dead holders (liveness)
def liveness_world() -> tuple[Clock, MemorySessionStore, ListQueue, MemoryWorkerLiveness, Reaper]:
    clock = Clock()
    store, queue = MemorySessionStore(clock=clock), ListQueue()
    liveness = MemoryWorkerLiveness(clock=clock)
    reaper = Reaper(store, queue, LocalReaperLock(), max_attempts=3, liveness=liveness)
    return clock, store, queue, liveness, reaper


@pytest.mark.unit
def test_a_session_whose_holder_lost_its_liveness_is_requeued_long_before_the_lease_expires() -> None:
    clock, store, queue, liveness, reaper = liveness_world()
    liveness.beat("w1", ttl_s=1.5)
    sid = streaming_session(store)  # lease TTL 5 s, held by w1
    assert reaper.run_once().requeued == []  # w1 is alive: nothing to do
    clock.now += 1.6  # w1 was killed: its liveness key lapsed, the lease has 3.4 s left
    report = reaper.run_once()
    assert report.revoked == [sid] and report.requeued == [sid]
    assert store.get(sid).state is SessionState.QUEUED
    assert [m.session_id for m in queue.messages] == [sid]


@pytest.mark.unit
def test_a_revoked_holder_can_neither_renew_nor_write_the_session_again() -> None:
    clock, store, _, liveness, reaper = liveness_world()
    liveness.beat("w1", ttl_s=1.5)
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE))
    stale = store.claim(session.id, "w1", ttl_s=5)
    assert stale is not None
    clock.now += 1.6
    assert reaper.run_once().revoked == [session.id]
    assert store.renew_and_check_stop(stale, 5) == (False, False)
    with pytest.raises(LeaseLost):
        store.transition(session.id, SessionState.STARTING, lease=stale)
    fresh = store.claim(session.id, "w2", ttl_s=5)
    assert fresh is not None and fresh.token > stale.token


@pytest.mark.unit
def test_holders_are_not_judged_by_liveness_while_the_reaper_distrusts_it() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    liveness = MemoryWorkerLiveness(clock=clock)
    reaper = Reaper(
        store, ListQueue(), LocalReaperLock(), max_attempts=3, liveness=liveness, trust_liveness=lambda: False
    )
    sid = streaming_session(store)  # w1 never beat (e.g. Redis just restarted and lost every key)
    assert reaper.run_once().requeued == []
    assert store.get(sid).state is SessionState.STREAMING


@pytest.mark.unit
def test_a_heart_reports_a_lapse_and_forgets_its_key_on_stop() -> None:
    clock = Clock()
    liveness = MemoryWorkerLiveness(clock=clock)
    lapses: list[str] = []
    heart = Heart(liveness, "w1", ttl_s=1.5, renew_s=3600, on_lapse=lambda: lapses.append("w1"), clock=clock)
    heart.start()
    assert liveness.alive(["w1"]) == {"w1"} and not heart.steady
    clock.now += 1.5
    heart._beat(first=False)  # the thread's next beat finds the key gone (it was starved)
    assert lapses == ["w1"] and not heart.steady
    clock.now += 1.0
    heart._beat(first=False)
    clock.now += 1.0
    assert heart.steady
    heart.stop()
    assert liveness.alive(["w1"]) == set()


class FlakyLiveness(MemoryWorkerLiveness):
    """Liveness whose backend is down while ``down`` is set."""

    down = False

    def beat(self, worker_id: str, ttl_s: float) -> bool:
        if self.down:
            raise BackendUnavailable("redis is unavailable: ConnectionError")
        return super().beat(worker_id, ttl_s)


@pytest.mark.unit
def test_a_lapse_caused_by_a_redis_outage_keeps_the_workers_sessions() -> None:
    clock = Clock()
    liveness = FlakyLiveness(clock=clock)
    lapses: list[str] = []
    heart = Heart(liveness, "w1", ttl_s=1.5, renew_s=3600, on_lapse=lambda: lapses.append("w1"), clock=clock)
    heart.start()
    liveness.down = True
    clock.now += 1.0
    heart._beat(first=False)  # Redis is down: the beat fails
    clock.now += 4.0
    liveness.down = False
    heart._beat(first=False)  # back: the key lapsed during the outage, for every worker alike

    assert lapses == [] and liveness.alive(["w1"]) == {"w1"}
    clock.now += 1.0
    heart._beat(first=False)
    clock.now += 1.0
    assert heart.steady and lapses == []


class PausedLiveness(MemoryWorkerLiveness):
    """Liveness whose backend is paused (SIGSTOP, a partition) for ``pause_s`` at the next call: the
    call waits, then runs on a clock that moved on, so the key has lapsed by then."""

    pause_s = 0.0

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.clock = clock

    def beat(self, worker_id: str, ttl_s: float) -> bool:
        self.clock.now += self.pause_s
        self.pause_s = 0.0
        return super().beat(worker_id, ttl_s)


@pytest.mark.unit
def test_a_lapse_seen_by_a_beat_that_waited_on_a_paused_redis_keeps_the_workers_sessions() -> None:
    clock = Clock()
    liveness = PausedLiveness(clock)
    lapses: list[str] = []
    heart = Heart(liveness, "w1", ttl_s=1.5, renew_s=0.4, on_lapse=lambda: lapses.append("w1"), clock=clock)
    heart.start()
    clock.now += 1.0
    heart._beat(first=False)
    clock.now += 0.5
    assert heart.steady
    liveness.pause_s = 4.0
    heart._beat(first=False)  # answered 4 s late, and the key had lapsed by Redis's clock

    assert lapses == [] and liveness.alive(["w1"]) == {"w1"}
    assert not heart.steady  # this worker's reaper waits a TTL before it judges others again
    clock.now += 1.0
    heart._beat(first=False)
    clock.now += 0.5
    assert heart.steady and lapses == []


class BlockedLiveness(MemoryWorkerLiveness):
    """Liveness whose next beat waits until ``release`` is set (Redis paused mid-call)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.block = False
        self.waiting = threading.Event()
        self.release = threading.Event()

    def beat(self, worker_id: str, ttl_s: float) -> bool:
        if self.block:
            self.waiting.set()
            self.release.wait(10)
        return super().beat(worker_id, ttl_s)


@pytest.mark.unit
def test_a_heart_whose_beat_waits_on_redis_is_not_steady_before_the_answer_comes() -> None:
    """Right after a pause, Redis may answer a reaper's reads before this heart's own late beat:
    the beat in flight already makes the worker's reaper distrust liveness."""
    clock = Clock()
    liveness = BlockedLiveness(clock)
    heart = Heart(liveness, "w1", ttl_s=1.5, renew_s=0.4, clock=clock)
    heart.start()
    clock.now += 1.0
    heart._beat(first=False)
    clock.now += 0.5
    assert heart.steady
    liveness.block = True
    beating = threading.Thread(target=heart._beat, kwargs={"first": False})
    beating.start()
    assert liveness.waiting.wait(5)
    clock.now += 1.0
    assert heart.steady  # 1 s in flight: the key (1.5 s TTL, beaten 0.4 s apart) cannot have lapsed
    clock.now += 0.3
    assert not heart.steady  # 1.3 s in flight: it may have, and Redis is not answering
    liveness.release.set()
    beating.join(5)
    assert not heart.steady  # the late answer restarted the steadiness clock


class SlowAliveLiveness(MemoryWorkerLiveness):
    """Liveness whose ``alive`` read takes ``read_s`` of real time (Redis answering late)."""

    read_s = 0.0

    def alive(self, worker_ids: Iterable[str]) -> set[str]:
        time.sleep(self.read_s)
        return super().alive(worker_ids)


@pytest.mark.unit
def test_a_reaper_judges_no_holder_on_a_liveness_read_that_came_back_late() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    liveness = SlowAliveLiveness(clock=clock)
    reaper = Reaper(
        store, ListQueue(), LocalReaperLock(), max_attempts=3, liveness=liveness, liveness_read_limit_s=0.05
    )
    liveness.beat("w1", ttl_s=1.5)
    sid = streaming_session(store)
    clock.now += 1.6  # w1's key has lapsed...
    liveness.read_s = 0.1  # ...but the read that says so came back late: no verdict on it
    assert reaper.run_once().revoked == []
    assert store.get(sid).state is SessionState.STREAMING
    liveness.read_s = 0.0  # a prompt read that still finds no key: w1 is dead
    assert reaper.run_once().revoked == [sid]


class ClaimDuringScan(MemorySessionStore):
    """The orphan scan reads "no lease" for a QUEUED session, a worker claims it, and then the scan
    reads its state (ASSIGNED): the session looks orphaned though its new holder is alive."""

    racing: str | None = None

    def scan_leases(self) -> LeaseScan:
        sid, self.racing = self.racing, None
        if sid is None:
            return super().scan_leases()
        assert self.claim(sid, "w2", ttl_s=5) is not None  # lands between the scan's two reads
        return LeaseScan(orphans=[sid], held=[])


@pytest.mark.unit
def test_a_session_claimed_during_the_orphan_scan_is_left_to_its_new_holder() -> None:
    """Seen once in 300 soak sessions: the reaper re-queued a just-claimed session, and its worker's
    next state change failed it with ILLEGAL_TRANSITION."""
    store, queue = ClaimDuringScan(), ListQueue()
    reaper = Reaper(store, queue, LocalReaperLock(), max_attempts=3)
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE))
    store.racing = session.id

    report = reaper.run_once()

    assert report.requeued == [] and report.failed == [] and queue.messages == []
    current = store.get(session.id)
    assert current.state is SessionState.ASSIGNED and current.worker_id == "w2"


# ---------------------------------------------------------------- stuck in QUEUED
def queued_world(
    resubmit_after_s: float = 60.0, deadline_s: float = 300.0
) -> tuple[Clock, MemorySessionStore, ListQueue, Reaper]:
    clock = Clock()
    clock.now = time.time()
    store, queue = MemorySessionStore(), ListQueue()
    policy = QueuePolicy(resubmit_after_s=resubmit_after_s, deadline_s=deadline_s)
    reaper = Reaper(store, queue, LocalReaperLock(), max_attempts=3, queue_policy=policy, clock=clock)
    return clock, store, queue, reaper


@pytest.mark.unit
def test_a_queued_session_whose_message_was_lost_is_resubmitted_once() -> None:
    clock, store, queue, reaper = queued_world()
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.EXPRESSION))
    assert reaper.run_once().resubmitted == []
    clock.now += 61
    assert reaper.run_once().resubmitted == [session.id]
    assert [(m.session_id, m.model, m.worker_id) for m in queue.messages] == [
        (session.id, ModelKind.EXPRESSION, None)
    ]
    clock.now += 30
    assert reaper.run_once().resubmitted == []  # once per QUEUED episode
    assert len(queue.messages) == 1


class SwitchWatch:
    """A RestartWatch the test flips: ``restarted`` is True once after each ``restart()``."""

    def __init__(self) -> None:
        self._pending = False

    def restart(self) -> None:
        self._pending = True

    def restarted(self) -> bool:
        pending, self._pending = self._pending, False
        return pending


@pytest.mark.unit
def test_after_a_redis_restart_every_queued_session_is_resubmitted_at_once_and_only_once() -> None:
    clock, store, queue = Clock(), MemorySessionStore(), ListQueue()
    clock.now = time.time()
    watch = SwitchWatch()
    policy = QueuePolicy(resubmit_after_s=60.0, deadline_s=300.0)
    reaper = Reaper(
        store, queue, LocalReaperLock(), max_attempts=3, queue_policy=policy, restarts=watch, clock=clock
    )
    waiting = [store.create(Session(id=uuid.uuid4().hex, tenant="t", model=m))[0].id for m in ModelKind]
    streaming = streaming_session(store)
    clock.now += 1
    assert reaper.run_once().resubmitted == []  # a second in QUEUED is no sign of a lost message

    watch.restart()
    clock.now += 1
    assert sorted(reaper.run_once().resubmitted) == sorted(waiting)  # not the streaming one
    assert sorted(m.session_id for m in queue.messages) == sorted(waiting)
    assert streaming not in {m.session_id for m in queue.messages}
    clock.now += 60
    assert reaper.run_once().resubmitted == []  # the 60 s rule finds them re-submitted already


@pytest.mark.integration
def test_the_restart_watch_sees_a_real_redis_restart_once_and_nothing_else(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, port=free_port())
    client = connect(server.start())
    try:
        watch = RedisRestartWatch(client)
        assert [watch.restarted(), watch.restarted()] == [False, False]  # the first call records
        assert RedisRestartWatch(client).restarted() is False  # another worker: the same server
        server.kill()
        server.restart()
        seen = []
        for _ in range(20):  # the first command on the broken connection may fail; the farm retries too
            try:
                seen.append(watch.restarted())
            except BackendUnavailable:
                continue
            if len(seen) == 3:
                break
        assert seen == [True, False, False]
    finally:
        client.close()
        server.stop()


@pytest.mark.integration
def test_a_redis_whose_acl_refuses_info_leaves_the_watch_off_and_the_reaper_running(
    redis_url: str, redis_client: redis.Redis
) -> None:
    user = f"noinfo-{uuid.uuid4().hex[:8]}"
    redis_client.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-info"])
    limited = connect(redis_url.replace("redis://", f"redis://{user}:pw@", 1))
    try:
        store = MemorySessionStore()
        store.create(Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE))
        reaper = Reaper(
            store, ListQueue(), LocalReaperLock(), max_attempts=3, restarts=RedisRestartWatch(limited)
        )
        assert [reaper.run_once().ran, reaper.run_once().ran] == [True, True]
    finally:
        limited.close()
        redis_client.acl_deluser(user)


@pytest.mark.unit
def test_a_session_queued_past_its_deadline_fails_and_frees_the_tenants_slot() -> None:
    clock, store, _, reaper = queued_world()
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE))
    assert store.count_live("t") == 1
    clock.now += 301
    report = reaper.run_once()
    assert report.timed_out == [session.id] and report.resubmitted == []
    final = store.get(session.id)
    assert final.state is SessionState.FAILED
    assert final.failure is not None and final.failure["code"] == "QUEUE_TIMEOUT"
    assert store.count_live("t") == 0
    assert store.claim(session.id, "w1", ttl_s=5) is None  # a late duplicate delivery is a no-op


@pytest.mark.unit
def test_a_session_claimed_after_the_reapers_read_is_not_timed_out() -> None:
    _, store, _, _ = queued_world()
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE))
    assert store.claim(session.id, "w1", ttl_s=5) is not None
    with pytest.raises(IllegalTransition):
        store.transition(session.id, SessionState.FAILED, expect=SessionState.QUEUED)
    assert store.get(session.id).state is SessionState.ASSIGNED


@pytest.mark.unit
def test_a_session_that_never_gets_past_starting_is_requeued_once_its_runner_gives_up() -> None:
    clock = Clock()
    store, queue = MemorySessionStore(clock=clock), ListQueue()
    session, _ = store.create(Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE))
    lease = store.claim(session.id, "w1", ttl_s=5)
    assert lease is not None
    store.transition(session.id, SessionState.STARTING, lease=lease)
    store.release(lease)  # the runner's start_timeout_s passed: it gives the lease up
    report = Reaper(store, queue, LocalReaperLock(), max_attempts=3).run_once()
    assert report.requeued == [session.id]
    assert store.get(session.id).state is SessionState.QUEUED


class CountingStore(MemorySessionStore):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.scans = 0

    def scan_leases(self):  # type: ignore[no-untyped-def]
        self.scans += 1
        return super().scan_leases()


class NeverLock:
    def acquire(self) -> bool:
        return False


@pytest.mark.unit
def test_the_fast_pass_reads_lease_holders_not_every_live_session() -> None:
    clock = Clock()
    store = CountingStore(clock=clock)
    liveness = MemoryWorkerLiveness(clock=clock)
    liveness.beat("w1", ttl_s=1.5)
    reaper = Reaper(
        store, ListQueue(), LocalReaperLock(), max_attempts=3, liveness=liveness, scan_lock=NeverLock()
    )
    sid = streaming_session(store)
    store.scans = 0
    assert reaper.run_once().requeued == []
    clock.now += 1.6
    assert reaper.run_once().requeued == [sid]  # found through the dead holder's own leases
    assert store.scans == 0
    assert "w1" not in store.lease_holders()  # forgotten once its leases were dealt with
