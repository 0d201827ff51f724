"""The reaper: sessions whose worker died (lease gone while live) are re-queued or failed.

Every worker runs a pass from its heartbeat, but one pass at a time runs across the fleet
(``names.REAPER_LOCK_KEY``). A session is re-queued (``→ QUEUED``, submitted again) until it has
been claimed ``max_attempts`` times; then it is FAILED with ``LEASE_EXPIRED``. ENDING sessions
cannot be resumed and are failed at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Protocol

import redis

from farm import names
from farm.contracts import RunSessionMessage
from farm.domain import SessionState
from farm.errors import FarmError, LeaseExpired
from farm.redis_conn import redis_errors
from farm.sessions.base import SessionQueue, SessionStore

log = logging.getLogger(__name__)


class ReaperLock(Protocol):
    def acquire(self) -> bool:
        """True when this caller may run a pass now (the lock expires by itself)."""
        ...


class RedisReaperLock:
    """``SET farm:reaper:lock <worker_id> NX PX ttl``: one pass per interval across the fleet."""

    def __init__(self, client: redis.Redis, worker_id: str, ttl_s: float) -> None:
        self._r = client
        self._worker_id = worker_id
        self._ttl_ms = max(1, int(ttl_s * 1000))

    @redis_errors
    def acquire(self) -> bool:
        return bool(self._r.set(names.REAPER_LOCK_KEY, self._worker_id, nx=True, px=self._ttl_ms))


class LocalReaperLock:
    """Process-local lock for in-memory tests: always granted unless another pass is running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self._lock.release()
        return True


@dataclass
class ReapReport:
    ran: bool
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Reaper:
    """One reaper pass: find orphans, re-queue or fail them."""

    def __init__(
        self, store: SessionStore, queue: SessionQueue, lock: ReaperLock, *, max_attempts: int
    ) -> None:
        self._store = store
        self._queue = queue
        self._lock = lock
        self._max_attempts = max_attempts

    def run_once(self) -> ReapReport:
        if not self._lock.acquire():
            return ReapReport(ran=False)
        report = ReapReport(ran=True)
        for session_id in self._store.orphaned():
            try:
                self._reap(session_id, report)
            except FarmError as exc:  # a concurrent move won; the next pass looks again
                log.info("reap skipped", extra={"session_id": session_id, "code": exc.code})
        return report

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
                failure={"code": error.code, "message": error.message},
            )
            report.failed.append(session_id)
            log.warning("session failed: lease expired", extra={"session_id": session_id})
            return
        self._store.transition(session_id, SessionState.QUEUED, reason="lease expired: re-queued")
        self._queue.submit(RunSessionMessage(session_id=session_id, model=session.model))
        report.requeued.append(session_id)
        log.warning(
            "session re-queued after lease expiry",
            extra={"session_id": session_id, "attempt": session.attempts},
        )
