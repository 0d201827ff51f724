"""LeasedMoves: a running session's state changes, recorded under its lease.

A Redis blip (BackendUnavailable) is retried with backoff for as long as the lease can still be
ours (``lease_ttl_s``), so a short outage costs a pause, not a failed session re-rendered from the
start elsewhere; a reply lost in the blip may hide a write that landed, so the state is read back.
The runner's other Redis reads under the lease (the avatar lookup at start) wait the same way
(``wait_out``).
Every store call runs off the event loop (many sessions share one loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from farm.infra.backoff import Backoff
from farm.kernel.domain import Session, SessionState
from farm.kernel.errors import BackendUnavailable, FarmError
from farm.sessions.base import Lease, SessionStore

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_FIRST_S = 0.05  # a state change that meets a Redis blip is retried after this, doubling
RETRY_MAX_S = 1.0


class LeasedMoves:
    def __init__(
        self, store: SessionStore, lease: Lease, *, lease_ttl_s: float, check_lease: Callable[[], None]
    ) -> None:
        self._store = store
        self._lease = lease
        self._lease_ttl_s = lease_ttl_s
        self._check_lease = check_lease  # raises LeaseLost once the lease is gone

    @property
    def _fields(self) -> dict[str, object]:
        return {"session_id": self._lease.session_id, "worker_id": self._lease.worker_id}

    async def move(self, target: SessionState, reason: str, **fields: Any) -> Session:
        """Record ``target`` under the lease (see the module docstring)."""
        session_id = self._lease.session_id

        def landed() -> Session | None:  # the lost reply may hide a write that landed
            current = self._store.get(session_id)
            return current if current.state is target else None

        return await self.wait_out(
            lambda: self._store.transition(session_id, target, reason=reason, lease=self._lease, **fields),
            "state change",
            landed=landed,
            state=target,
        )

    async def wait_out(
        self,
        call: Callable[[], T],
        what: str,
        *,
        landed: Callable[[], T | None] | None = None,
        **log_fields: object,
    ) -> T:
        """``call()`` off the event loop, a Redis blip (BackendUnavailable) retried with backoff for as
        long as the lease can still be ours; after each wait ``landed()``, when given, may return what
        an attempt whose reply was lost achieved."""
        give_up_at = time.monotonic() + self._lease_ttl_s
        backoff = Backoff(first_s=RETRY_FIRST_S, max_s=RETRY_MAX_S)
        while True:
            self._check_lease()
            delay_s = backoff.next_s()
            try:
                return await asyncio.to_thread(call)
            except BackendUnavailable:
                if time.monotonic() + delay_s > give_up_at:
                    raise
                log.warning("%s waits for the backend", what, extra={**self._fields, **log_fields})
            await asyncio.sleep(delay_s)
            if landed is not None:
                with contextlib.suppress(BackendUnavailable):
                    done = await asyncio.to_thread(landed)
                    if done is not None:
                        return done

    async def fail(self, exc: Exception, timings_ms: dict[str, float]) -> Session | None:
        """FAILED with ``failure = {code, message}`` (an unexpected error is INTERNAL_ERROR, logged with
        its trace); None when even that cannot be recorded."""
        if isinstance(exc, FarmError):
            failure = {"code": exc.code, "message": exc.message}
            log.warning("session failed", extra={**self._fields, "code": exc.code})
        else:
            failure = {"code": "INTERNAL_ERROR", "message": f"render failed: {type(exc).__name__}"}
            log.exception("session failed", extra=self._fields)
        try:
            return await asyncio.to_thread(
                self._store.transition,
                self._lease.session_id,
                SessionState.FAILED,
                reason=failure["code"],
                lease=self._lease,
                failure=failure,
                timings_ms=timings_ms,
            )
        except FarmError:
            log.warning("could not record the failure", extra=self._fields)
            return None
