"""In-memory SessionStore: a unit-test tool with the Redis implementations' semantics.

One lock makes every method atomic; lease expiry reads an injectable monotonic clock so tests can
expire a lease without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from farm.kernel.domain import TERMINAL_STATES, Session, SessionState
from farm.kernel.errors import ConcurrencyLimit, IllegalTransition, LeaseLost, NotFound
from farm.sessions.base import Lease, LeaseScan
from farm.sessions.transitions import apply_claim, apply_transition, check_expected, initial

Clock = Callable[[], float]


@dataclass
class _LeaseEntry:
    worker_id: str
    token: int
    expires_at: float


class MemorySessionStore:
    """SessionStore in a dict (unit tests only)."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._sessions: dict[str, Session] = {}
        self._leases: dict[str, _LeaseEntry] = {}
        self._fences: dict[str, int] = {}
        self._stops: set[str] = set()
        self._idem: dict[str, str] = {}  # "tenant|scope" → session id
        self._holders: set[str] = set()  # workers that claimed, until the reaper forgets them

    # ------------------------------------------------------------ records
    def create(
        self, session: Session, *, idempotency_scope: str | None = None, max_live: int | None = None
    ) -> tuple[Session, bool]:
        with self._lock:
            scope = f"{session.tenant}|{idempotency_scope}" if idempotency_scope is not None else None
            if scope is not None:
                held = self._idem.get(scope)
                if held is not None and self._sessions[held].live:
                    return self._sessions[held], False
            if max_live is not None and self._live_of(session.tenant) >= max_live:
                raise ConcurrencyLimit(f"the tenant already has {max_live} live sessions (its limit)")
            if scope is not None:
                self._idem[scope] = session.id
            stored = initial(session)
            self._sessions[session.id] = stored
            return stored, True

    def get(self, session_id: str) -> Session:
        with self._lock:
            try:
                return self._sessions[session_id]
            except KeyError:
                raise NotFound(f"session {session_id} not found") from None

    def get_for_tenant(self, tenant: str, session_id: str) -> Session:
        session = self.get(session_id)
        if session.tenant != tenant:
            raise NotFound(f"session {session_id} not found")
        return session

    def list_for_tenant(self, tenant: str, *, limit: int = 50, offset: int = 0) -> list[Session]:
        with self._lock:
            own = [s for s in self._sessions.values() if s.tenant == tenant]
        own.sort(key=lambda s: s.created_at, reverse=True)
        return own[offset : offset + limit]

    def count_live(self, tenant: str) -> int:
        with self._lock:
            return self._live_of(tenant)

    def live_for_tenant(self, tenant: str) -> list[Session]:
        with self._lock:
            return [s for s in self._sessions.values() if s.tenant == tenant and s.live]

    def recent(self, limit: int) -> list[Session]:
        with self._lock:
            done = [s for s in self._sessions.values() if not s.live]
        done.sort(key=lambda s: s.updated_at, reverse=True)
        return done[:limit]

    def _live_of(self, tenant: str) -> int:  # caller holds the lock
        return sum(1 for s in self._sessions.values() if s.tenant == tenant and s.live)

    # ------------------------------------------------------------ state machine
    def transition(
        self,
        session_id: str,
        target: SessionState,
        *,
        reason: str | None = None,
        lease: Lease | None = None,
        expect: SessionState | None = None,
        unleased: bool = False,
        **fields: Any,
    ) -> Session:
        with self._lock:
            current = self.get(session_id)
            check_expected(current, expect)
            if unleased and self._live_lease(session_id) is not None:
                raise IllegalTransition(f"session {session_id} is leased again")
            if lease is not None and not self._holds(lease):
                raise LeaseLost(f"lease on session {session_id} was lost", token=lease.token)
            worker_id = lease.worker_id if lease is not None else None
            updated = apply_transition(current, target, reason=reason, worker_id=worker_id, fields=fields)
            self._sessions[session_id] = updated
            if target in TERMINAL_STATES:
                self._stops.discard(session_id)
            return updated

    def claim(self, session_id: str, worker_id: str, ttl_s: float) -> Lease | None:
        with self._lock:
            current = self.get(session_id)
            if current.state is not SessionState.QUEUED or self._live_lease(session_id) is not None:
                return None
            token = self._fences.get(session_id, 0) + 1
            self._fences[session_id] = token
            self._leases[session_id] = _LeaseEntry(worker_id, token, self._clock() + ttl_s)
            self._holders.add(worker_id)
            self._sessions[session_id] = apply_claim(current, worker_id)
            return Lease(session_id=session_id, worker_id=worker_id, token=token)

    def renew(self, lease: Lease, ttl_s: float) -> bool:
        with self._lock:
            if not self._holds(lease):
                return False
            self._leases[lease.session_id].expires_at = self._clock() + ttl_s
            return True

    def renew_and_check_stop(self, lease: Lease, ttl_s: float) -> tuple[bool, bool]:
        with self._lock:
            held = self.renew(lease, ttl_s)  # RLock: re-entrant
            return held, held and lease.session_id in self._stops

    def release(self, lease: Lease) -> None:
        with self._lock:
            if self._holds(lease):
                del self._leases[lease.session_id]

    def request_stop(self, session_id: str) -> None:
        with self._lock:
            self.get(session_id)
            self._stops.add(session_id)

    def stop_requested(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._stops

    def orphaned(self) -> list[str]:
        with self._lock:
            return [
                sid
                for sid, s in self._sessions.items()
                if s.live and s.state is not SessionState.QUEUED and self._live_lease(sid) is None
            ]

    def scan_leases(self) -> LeaseScan:
        with self._lock:
            return LeaseScan(orphans=self.orphaned(), held=self._held())

    def _held(self) -> list[Lease]:  # caller holds the lock
        return [
            Lease(session_id=sid, worker_id=entry.worker_id, token=entry.token)
            for sid in list(self._leases)
            if self._sessions[sid].live and (entry := self._live_lease(sid)) is not None
        ]

    def revoke(self, lease: Lease) -> bool:
        with self._lock:
            if not self._holds(lease):
                return False
            del self._leases[lease.session_id]
            return True

    def lease_holders(self) -> set[str]:
        with self._lock:
            return {lease.worker_id for lease in self._held()} | self._holders

    def leases_of(self, worker_id: str) -> list[Lease]:
        with self._lock:
            return [lease for lease in self._held() if lease.worker_id == worker_id]

    def forget_holder(self, worker_id: str) -> None:
        with self._lock:
            self._holders.discard(worker_id)

    def queued_before(self, at: float) -> list[tuple[str, float]]:
        with self._lock:
            rows = [
                (sid, s.updated_at)
                for sid, s in self._sessions.items()
                if s.state is SessionState.QUEUED and s.updated_at <= at
            ]
        return sorted(rows, key=lambda row: row[1])

    # ------------------------------------------------------------ helpers
    def _live_lease(self, session_id: str) -> _LeaseEntry | None:
        entry = self._leases.get(session_id)
        if entry is not None and entry.expires_at <= self._clock():
            del self._leases[session_id]
            return None
        return entry

    def _holds(self, lease: Lease) -> bool:
        entry = self._live_lease(lease.session_id)
        return entry is not None and entry.token == lease.token and entry.worker_id == lease.worker_id
