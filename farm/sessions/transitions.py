"""Pure functions that compute a session's next version; shared by every SessionStore implementation.

The stores add atomicity (a lock, or WATCH/MULTI); the rules live here once.
"""

from __future__ import annotations

import time
from typing import Any

from farm.kernel.domain import Session, SessionState, StateChange, check_transition
from farm.kernel.errors import IllegalTransition

_IMMUTABLE = frozenset({"id", "tenant", "model", "state", "history", "created_at"})


def apply_transition(
    session: Session,
    target: SessionState,
    *,
    reason: str | None = None,
    worker_id: str | None = None,
    fields: dict[str, Any] | None = None,
    now: float | None = None,
) -> Session:
    """Return ``session`` moved to ``target`` (IllegalTransition if not allowed), history appended."""
    check_transition(session.state, target)
    at = time.time() if now is None else now
    updates = dict(fields or {})
    bad = _IMMUTABLE.intersection(updates)
    if bad:
        raise ValueError(f"transition cannot set {sorted(bad)}")
    data = session.model_dump()
    if target is SessionState.QUEUED:
        data["worker_id"] = None  # handed back: nobody holds it until the next claim
    if "timings_ms" in updates:
        data["timings_ms"] = {**data["timings_ms"], **updates.pop("timings_ms")}
    data.update(updates)
    data["state"] = target
    data["updated_at"] = at
    change = StateChange(state=target, at=at, reason=reason, worker_id=worker_id or data.get("worker_id"))
    data["history"].append(change.model_dump())
    return Session.model_validate(data)


def check_expected(session: Session, expect: SessionState | None) -> None:
    """IllegalTransition unless ``session`` is in state ``expect`` (None: any state)."""
    if expect is not None and session.state is not expect:
        raise IllegalTransition(f"the session is {session.state}, no longer {expect}")


def apply_claim(session: Session, worker_id: str, *, now: float | None = None) -> Session:
    """QUEUED → ASSIGNED for ``worker_id``, counting the attempt."""
    claimed = apply_transition(session, SessionState.ASSIGNED, reason="claimed", worker_id=worker_id, now=now)
    return claimed.model_copy(update={"worker_id": worker_id, "attempts": session.attempts + 1})


def initial(session: Session, *, now: float | None = None) -> Session:
    """A new session as stored: QUEUED with its first history entry."""
    at = time.time() if now is None else now
    if session.state is not SessionState.QUEUED:
        raise ValueError("a new session starts QUEUED")
    history = session.history or [StateChange(state=SessionState.QUEUED, at=at, reason="created")]
    return session.model_copy(update={"history": history, "updated_at": at})
