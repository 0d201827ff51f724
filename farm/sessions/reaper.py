"""The reaper: sessions whose worker died are re-queued or failed; stuck QUEUED sessions recovered.

Every worker runs a pass from its heartbeat (every ``reaper_interval_s``), but one pass at a time
runs across the fleet (``names.REAPER_LOCK_KEY``). A pass:

* finds orphans: live sessions whose lease HOLDER is dead (its liveness key,
  ``farm.sessions.liveness``, expired: noticed within ``liveness_ttl_s`` of a kill -9; read from
  the index of lease holders, so this costs O(workers) per pass), and, at most every
  ``orphan_scan_s`` across the fleet (its own lock), live sessions past QUEUED whose lease is gone
  (expired after ``lease_ttl_s`` — a wedged but living worker — or released by a stalled runner; a
  scan of every live session's lease). A dead holder's lease is revoked first (compare-and-delete
  on its value), so that holder can never renew it or write the session again (fencing);
* re-queues each orphan (``→ QUEUED``, submitted again) until it has been claimed ``max_attempts``
  times; then it is FAILED with ``LEASE_EXPIRED``. ENDING sessions cannot be resumed and fail at once;
* re-submits, once per QUEUED episode, the message of a session QUEUED longer than
  ``queue_resubmit_s`` (its broker message may be lost; a duplicate delivery is a harmless no-op
  because claims are idempotent), and FAILs with ``QUEUE_TIMEOUT`` a session QUEUED longer than
  ``queue_deadline_s`` (its tenant's concurrency slot is released);
* re-submits every QUEUED session at once, the same way, on the first pass after Redis restarted or
  failed over (``restarts``: its ``run_id`` changed). Writes in flight at a crash are lost, and a
  message that was mid-delivery then (popped from its list, not yet in kombu's unacked set) is in
  no queue: before this, such a session waited the whole ``queue_resubmit_s`` (60 s) with workers
  idle (``farm bench chaos redis-restart``, 2026-12-07);
* runs the extra ``cleaners`` it was given (the Celery layer's dead-worker queue cleanup).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis

from farm.infra.redis_conn import redis_errors, require_text_client
from farm.kernel import names
from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import SessionState
from farm.kernel.errors import FarmError, LeaseExpired, QueueTimeout
from farm.sessions.base import SessionQueue, SessionStore
from farm.sessions.liveness import WorkerLiveness

log = logging.getLogger(__name__)


class ReaperLock(Protocol):
    def acquire(self) -> bool:
        """True when this caller may run a pass now (the lock expires by itself)."""
        ...


class RedisReaperLock:
    """``SET <key> <worker_id> NX PX ttl``: one pass per interval across the fleet."""

    def __init__(
        self, client: redis.Redis, worker_id: str, ttl_s: float, *, key: str = names.REAPER_LOCK_KEY
    ) -> None:
        self._r = client
        self._worker_id = worker_id
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._key = key

    @redis_errors
    def acquire(self) -> bool:
        return bool(self._r.set(self._key, self._worker_id, nx=True, px=self._ttl_ms))


class LocalReaperLock:
    """Process-local lock for in-memory tests: always granted unless another pass is running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self._lock.release()
        return True


class Once(Protocol):
    def first(self, key: str, ttl_s: float) -> bool:
        """True the first time ``key`` is seen (within ``ttl_s``), False afterwards."""
        ...


class RedisOnce:
    """``SET key 1 NX PX ttl``: a marker shared by every reaper in the fleet."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @redis_errors
    def first(self, key: str, ttl_s: float) -> bool:
        return bool(self._r.set(key, "1", nx=True, px=max(1, int(ttl_s * 1000))))


class RestartWatch(Protocol):
    def restarted(self) -> bool:
        """True on the first call that sees a new Redis server (restart, failover) since the last."""
        ...


class RedisRestartWatch:
    """Compares the server's ``run_id`` (``INFO server``; new at every start, other on a promoted
    replica) with the one last recorded in Redis itself (``names.REDIS_RUN_ID_KEY``, GETSET), so the
    fleet notices a restart once, whichever worker runs the next pass. The first pass on a fresh
    Redis records its id and reports nothing."""

    def __init__(self, client: redis.Redis, *, key: str = names.REDIS_RUN_ID_KEY) -> None:
        self._r = require_text_client(client)  # a bytes id would never equal the str one: always "new"
        self._key = key
        self._refused = False

    @redis_errors
    def restarted(self) -> bool:
        if self._refused:
            return False
        try:
            run_id = str(self._r.info("server")["run_id"])
            previous = self._r.getset(self._key, run_id)
        except redis.exceptions.NoPermissionError as exc:  # an ACL without INFO or GETSET: no watch
            self._refused = True
            log.warning(
                "redis refused the restart watch; a lost message waits for queue_resubmit_s",
                extra={"error": str(exc)},
            )
            return False
        return previous is not None and previous != run_id


class LocalOnce:
    """Process-local ``Once`` (unit tests)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def first(self, key: str, ttl_s: float) -> bool:
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


@dataclass(frozen=True)
class QueuePolicy:
    """What the reaper does with sessions that wait in QUEUED (seconds; 0 turns a rule off)."""

    resubmit_after_s: float = 0.0
    deadline_s: float = 0.0


@dataclass
class ReapReport:
    ran: bool
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    """Sessions whose lease was revoked because its holder's liveness key was gone."""
    resubmitted: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)


class Reaper:
    """One reaper pass: find orphans (dead leases, dead holders), re-queue or fail them; recover
    QUEUED sessions whose message is lost or whose deadline passed."""

    def __init__(
        self,
        store: SessionStore,
        queue: SessionQueue,
        lock: ReaperLock,
        *,
        max_attempts: int,
        liveness: WorkerLiveness | None = None,
        trust_liveness: Callable[[], bool] = lambda: True,
        liveness_read_limit_s: float = 0.4,
        queue_policy: QueuePolicy = QueuePolicy(),
        once: Once | None = None,
        restarts: RestartWatch | None = None,
        cleaners: Sequence[Callable[[], object]] = (),
        scan_lock: ReaperLock | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._lock = lock
        self._max_attempts = max_attempts
        self._liveness = liveness
        self._trust_liveness = trust_liveness
        self._liveness_read_limit_s = liveness_read_limit_s
        self._policy = queue_policy
        self._once = once or LocalOnce()
        self._restarts = restarts
        self.cleaners = cleaners
        self._scan_lock = scan_lock
        self._clock = clock

    def run_once(self) -> ReapReport:
        """The fast part every pass (dead holders: O(workers)); the scan of every live session's
        lease (expired or released leases: O(live sessions)) only when ``scan_lock`` grants it."""
        started = time.monotonic()  # before the lock: a lock call that waited on Redis counts too
        if not self._lock.acquire():
            return ReapReport(ran=False)
        report = ReapReport(ran=True)
        if self._restarts is not None and self._restarts.restarted():
            self._resubmit_after_restart(report)
        orphans = self._revoke_dead_holders(report, started)
        if self._scan_lock is None or self._scan_lock.acquire():
            orphans += [sid for sid in self._store.scan_leases().orphans if sid not in orphans]
        for session_id in orphans:
            try:
                self._reap(session_id, report)
            except FarmError as exc:  # a concurrent move won; the next pass looks again
                log.info("reap skipped", extra={"session_id": session_id, "code": exc.code})
        self._recover_queued(report)
        for clean in self.cleaners:
            try:
                clean()
            except Exception:
                log.exception("reaper cleaner failed")
        return report

    def _revoke_dead_holders(self, report: ReapReport, read_at: float) -> list[str]:
        """Revoke the leases of holders without a liveness key; return their sessions."""
        if self._liveness is None or not self._trust_liveness():
            return []
        holders = self._store.lease_holders()
        if not holders:
            return []
        dead = holders - self._liveness.alive(holders)
        if time.monotonic() - read_at > self._liveness_read_limit_s or not self._trust_liveness():
            # Redis answered late (paused, failing over, partitioned): keys lapse by ITS clock, so a
            # missing key now may only mean a beat waited with this read. Judge on a prompt read.
            if dead:
                log.warning("liveness read too slow to judge", extra={"worker_id": sorted(dead)[0]})
            return []
        for worker_id in sorted(dead):
            for lease in self._store.leases_of(worker_id):
                if self._store.revoke(lease):
                    report.revoked.append(lease.session_id)
                    log.warning(
                        "lease revoked: its worker is gone",
                        extra={"session_id": lease.session_id, "worker_id": worker_id},
                    )
            self._store.forget_holder(worker_id)
        return list(report.revoked)

    def _reap(self, session_id: str, report: ReapReport) -> None:
        session = self._store.get(session_id)
        if session.state is SessionState.ENDING or session.attempts >= self._max_attempts:
            error = LeaseExpired(
                f"the session's worker stopped responding (after {session.attempts} attempt(s))"
            )
            self._store.transition(
                session_id,
                SessionState.FAILED,
                reason="lease expired",
                unleased=True,
                failure={"code": error.code, "message": error.message},
            )
            report.failed.append(session_id)
            log.warning("session failed: lease expired", extra={"session_id": session_id})
            return
        # unleased: the scan read "no lease", but a claim may have landed since (the session was
        # QUEUED then); re-queueing it now would pull it from under its new holder.
        self._store.transition(
            session_id, SessionState.QUEUED, reason="lease expired: re-queued", unleased=True
        )
        self._queue.submit(RunSessionMessage(session_id=session_id, model=session.model))
        report.requeued.append(session_id)
        log.warning(
            "session re-queued after lease expiry",
            extra={"session_id": session_id, "attempt": session.attempts},
        )

    # ------------------------------------------------------------ stuck in QUEUED
    def _recover_queued(self, report: ReapReport) -> None:
        policy, now = self._policy, self._clock()
        if policy.deadline_s > 0:
            for session_id, _ in self._store.queued_before(now - policy.deadline_s):
                try:
                    self._time_out(session_id, report)
                except FarmError as exc:  # claimed (or ended) since the read
                    log.info("queue timeout skipped", extra={"session_id": session_id, "code": exc.code})
        if policy.resubmit_after_s > 0:
            queued = self._store.queued_before(now - policy.resubmit_after_s)
            self._resubmit_each([row for row in queued if row[0] not in report.timed_out], report)

    def _resubmit_after_restart(self, report: ReapReport) -> None:
        """Redis restarted or failed over: re-submit every QUEUED session's message (once each per
        QUEUED episode, as the ``queue_resubmit_s`` rule would later)."""
        queued = self._store.queued_before(self._clock())
        log.warning(
            "redis restarted or failed over: re-submitting queued sessions", extra={"count": len(queued)}
        )
        self._resubmit_each(queued, report)

    def _resubmit_each(self, queued: Sequence[tuple[str, float]], report: ReapReport) -> None:
        for session_id, queued_at in queued:
            try:
                self._resubmit(session_id, queued_at, report)
            except FarmError as exc:  # claimed (or ended) since the read
                log.info("re-submit skipped", extra={"session_id": session_id, "code": exc.code})

    def _time_out(self, session_id: str, report: ReapReport) -> None:
        error = QueueTimeout(
            f"no worker took the session within {self._policy.deadline_s:g} s (queue deadline)"
        )
        self._store.transition(
            session_id,
            SessionState.FAILED,
            reason="queue deadline passed",
            expect=SessionState.QUEUED,
            failure={"code": error.code, "message": error.message},
        )
        report.timed_out.append(session_id)
        log.warning("session failed: queue deadline passed", extra={"session_id": session_id})

    def _resubmit(self, session_id: str, queued_at: float, report: ReapReport) -> None:
        marker = names.session_resubmitted_key(session_id, int(queued_at * 1000))
        ttl_s = max(self._policy.deadline_s, self._policy.resubmit_after_s) or 3600.0
        if not self._once.first(marker, ttl_s):
            return
        session = self._store.get(session_id)
        if session.state is not SessionState.QUEUED:
            return
        # The shared queue, never a worker's private one: its worker may be the one that lost it.
        self._queue.submit(RunSessionMessage(session_id=session_id, model=session.model))
        report.resubmitted.append(session_id)
        log.warning(
            "queued session re-submitted: its message may be lost",
            extra={"session_id": session_id, "waited_s": round(self._clock() - queued_at, 3)},
        )
