"""Seams of the session layer: SessionStore, SessionQueue, AgentStore, WorkerRegistry (and Lease).

Each has a Redis implementation (production) and an in-memory one (unit tests only) beside it
(``redis_store``/``memory``, ``agents``, ``registry``). API keys are tenancy's (``farm.tenancy.base``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from farm.kernel.contracts import RunSessionMessage, WorkerInfo
from farm.kernel.domain import Agent, AgentStatus, Session, SessionState


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof that ``worker_id`` holds ``session_id``; ``token`` is the fencing token (monotonic)."""

    session_id: str
    worker_id: str
    token: int


@dataclass(frozen=True, slots=True)
class LeaseScan:
    """One look at every live session's lease (the reaper's pass)."""

    orphans: list[str]
    """Live sessions past QUEUED without a lease (it expired or was released: their worker died)."""
    held: list[Lease]
    """The leases that exist now; the reaper checks their holders' liveness."""


class SessionStore(Protocol):
    def create(
        self, session: Session, *, idempotency_scope: str | None = None, max_live: int | None = None
    ) -> tuple[Session, bool]:
        """Store a new QUEUED session. With a scope, return (existing live session, False) if one holds it.

        With ``max_live``, raise errors.ConcurrencyLimit when the tenant already has that many live
        sessions, checked atomically with the insert (two racing requests cannot both pass).
        """
        ...

    def get(self, session_id: str) -> Session:
        """Raise errors.NotFound when absent."""
        ...

    def get_for_tenant(self, tenant: str, session_id: str) -> Session:
        """Like get, but another tenant's session is NotFound (404, never 403)."""
        ...

    def list_for_tenant(self, tenant: str, *, limit: int = 50, offset: int = 0) -> list[Session]: ...

    def count_live(self, tenant: str) -> int: ...

    def live_for_tenant(self, tenant: str) -> list[Session]:
        """The tenant's sessions not yet ENDED/FAILED (agent deletion, speak)."""
        ...

    def recent(self, limit: int) -> list[Session]:
        """The farm's latest ENDED/FAILED sessions, every tenant, newest first (operator views)."""
        ...

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
        """Move the session atomically; refuse illegal moves (IllegalTransition) and, with a lease,
        refuse a holder whose token is stale (LeaseLost); with ``expect``, refuse (IllegalTransition)
        unless the session is in that state (a reaper acting on a stale read); with ``unleased``,
        refuse (IllegalTransition) while anyone holds a lease on it (a reaper whose "no lease" read
        raced a claim). ``fields`` updates other Session fields."""
        ...

    def claim(self, session_id: str, worker_id: str, ttl_s: float) -> Lease | None:
        """Take the lease and move QUEUED → ASSIGNED atomically; None if a live lease exists or the
        session is not QUEUED (a duplicate delivery)."""
        ...

    def renew(self, lease: Lease, ttl_s: float) -> bool:
        """Extend the lease; False if it was lost (expired or taken over)."""
        ...

    def renew_and_check_stop(self, lease: Lease, ttl_s: float) -> tuple[bool, bool]:
        """``renew`` and read the stop flag in one call: (still held, stop requested)."""
        ...

    def release(self, lease: Lease) -> None: ...

    def request_stop(self, session_id: str) -> None: ...

    def stop_requested(self, session_id: str) -> bool: ...

    def orphaned(self) -> list[str]:
        """Live sessions past QUEUED whose lease is gone (their worker died)."""
        ...

    def scan_leases(self) -> LeaseScan:
        """``orphaned()`` and the leases held now, in one pass over the live sessions."""
        ...

    def revoke(self, lease: Lease) -> bool:
        """Delete ``lease`` if it is still the session's lease (compare-and-delete): its holder can
        never renew it again. True when it was deleted."""
        ...

    def lease_holders(self) -> set[str]:
        """Worker ids that took a lease and are not forgotten yet (the reaper's liveness check)."""
        ...

    def leases_of(self, worker_id: str) -> list[Lease]:
        """The leases ``worker_id`` holds now."""
        ...

    def forget_holder(self, worker_id: str) -> None:
        """Drop a dead holder from the holder index (its leases were revoked or expired)."""
        ...

    def queued_before(self, at: float) -> list[tuple[str, float]]:
        """(session id, when it entered QUEUED) of the sessions waiting in QUEUED since before ``at``
        (unix seconds), oldest first."""
        ...


class SessionQueue(Protocol):
    def submit(self, message: RunSessionMessage) -> None:
        """Enqueue on the queue named after ``message.model`` (raise BackendUnavailable on failure)."""
        ...


class AgentStore(Protocol):
    def create(self, agent: Agent) -> Agent: ...

    def get(self, agent_id: str) -> Agent: ...

    def get_for_tenant(self, tenant: str, agent_id: str) -> Agent: ...

    def update(self, agent_id: str, status: AgentStatus, **fields: Any) -> Agent: ...

    def record_use(self, agent_id: str) -> None:
        """Count a session of the agent (hot-set rank) and remember when (``last_used``)."""
        ...

    def last_used(self, agent_ids: list[str]) -> dict[str, float]:
        """Epoch seconds of each agent's latest session; agents never used are absent."""
        ...

    def most_used(self, n: int) -> list[str]: ...

    def delete(self, agent_id: str) -> None:
        """Forget the agent (record, tenant index, usage rank, dynamics rules); NotFound if absent."""
        ...

    def list_for_tenant(self, tenant: str) -> list[Agent]:
        """A tenant's agents, oldest first."""
        ...


class WorkerRegistry(Protocol):
    def publish(self, info: WorkerInfo, ttl_s: float) -> None: ...

    def remove(self, worker_id: str) -> None: ...

    def list(self) -> list[WorkerInfo]: ...
