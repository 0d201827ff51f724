"""Per-process registry of live sessions, and the one function every gesture trigger ends in.

A running session registers itself (``LocalSessions.register``) with a ``deliver`` callback that
starts a gesture on its renderer. Three sources reach it, and all end in ``LocalSession.trigger``:

* the ``trigger_dynamics`` RPC of the session's room (``parse_rpc_payload`` then ``trigger``),
* the dynamics topic (``LocalSessions.handle``, called by the process's DynamicsBus subscriber),
* keyword rules matched in the room's transcriptions (``farm.dynamics.transcripts``).

``trigger`` validates the name, applies the session's Debouncer, then calls ``deliver``. It runs on
whatever thread the source uses (the bus subscriber has its own thread), so ``deliver`` must be
thread-safe; wrap an event-loop callback with ``threadsafe_deliver``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from farm.dynamics.base import DynamicsAck, Reason, SessionOutcome, TriggerResult
from farm.dynamics.debounce import DEDUP_WINDOW_S, Debouncer
from farm.kernel.contracts import DynamicsMessage
from farm.kernel.errors import MalformedJson, UnknownGesture, ValidationError

log = logging.getLogger(__name__)

Deliver = Callable[[str], None]
"""Start gesture ``action`` on the session's renderer; may raise errors.UnknownGesture."""

MAX_RPC_PAYLOAD_BYTES = 4096


class LocalSession:
    """One live session of this process as the dynamics router sees it."""

    def __init__(
        self,
        session_id: str,
        tenant: str,
        agent_id: str | None,
        gestures: Iterable[str],
        deliver: Deliver,
        *,
        debouncer: Debouncer | None = None,
    ) -> None:
        self.session_id = session_id
        self.tenant = tenant
        self.agent_id = agent_id
        self.gestures = frozenset(gestures)
        self._deliver = deliver
        self._debouncer = debouncer or Debouncer()
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Refuse every later trigger (the session is ending)."""
        self._closed.set()

    def trigger(self, action: str, message_id: str | None = None) -> TriggerResult:
        """Play ``action`` unless unknown, debounced or a duplicate of ``message_id``; say which."""
        if self.closed:
            return self._refused(action, "session_closed")
        if action not in self.gestures:
            return self._refused(action, "unknown_gesture")
        reason = self._debouncer.admit(action, message_id)
        if reason is not None:
            return self._refused(action, reason)
        try:
            self._deliver(action)
        except UnknownGesture:
            return self._refused(action, "unknown_gesture")
        except Exception:  # e.g. the session's event loop closed under a late trigger
            log.exception("gesture delivery failed", extra={"session_id": self.session_id})
            return self._refused(action, "delivery_failed")
        log.debug("gesture delivered", extra={"session_id": self.session_id, "action": action})
        return TriggerResult(action, True, self.session_id)

    def _refused(self, action: str, reason: Reason) -> TriggerResult:
        log.debug("gesture refused", extra={"session_id": self.session_id, "reason": reason})
        return TriggerResult(action, False, self.session_id, reason)


class LocalSessions:
    """The live sessions of one worker process, found by session id or by (tenant, agent)."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._sessions: dict[str, LocalSession] = {}
        self._lock = threading.Lock()

    def register(
        self,
        session_id: str,
        tenant: str,
        agent_id: str | None,
        gestures: Iterable[str],
        deliver: Deliver,
        *,
        cooldowns_s: Mapping[str, float] | None = None,
        dedup_window_s: float = DEDUP_WINDOW_S,
    ) -> LocalSession:
        """Make a running session reachable by triggers; call ``unregister`` when it ends."""
        debouncer = Debouncer(cooldowns_s, dedup_window_s=dedup_window_s)
        session = LocalSession(session_id, tenant, agent_id, gestures, deliver, debouncer=debouncer)
        with self._lock:
            self._sessions[session_id] = session
        return session

    def unregister(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.close()

    def get(self, session_id: str) -> LocalSession | None:
        with self._lock:
            return self._sessions.get(session_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def matching(self, message: DynamicsMessage) -> list[LocalSession]:
        """Local sessions a message addresses: its session, else its agent's; always within its tenant."""
        with self._lock:
            sessions = list(self._sessions.values())
        if message.session_id is not None:
            return [s for s in sessions if s.session_id == message.session_id and s.tenant == message.tenant]
        if message.agent_id is not None:
            return [s for s in sessions if s.agent_id == message.agent_id and s.tenant == message.tenant]
        return []

    def route(self, message: DynamicsMessage) -> list[TriggerResult]:
        """Trigger ``message.action`` on every matching local session (dedup by message id)."""
        return [s.trigger(message.action, message.message_id) for s in self.matching(message)]

    def handle(self, message: DynamicsMessage) -> DynamicsAck:
        """The DynamicsBus handler of this process: route, then describe the outcome for the ack."""
        outcomes = [
            SessionOutcome(
                session_id=r.session_id or "", animation_triggered=r.animation_triggered, reason=r.reason
            )
            for r in self.route(message)
        ]
        return DynamicsAck(message_id=message.message_id, worker_id=self.worker_id, sessions=outcomes)


def parse_rpc_payload(payload: str) -> str:
    """The ``action`` of a trigger_dynamics RPC payload (``{"action", "identity"?, "timestamp"?}``).

    Raises errors.MalformedJson for a payload that is not a JSON object, and errors.ValidationError
    when ``action`` is missing or not a non-empty string; the LiveKit side turns both into an RPC error.
    """
    if len(payload.encode()) > MAX_RPC_PAYLOAD_BYTES:
        raise ValidationError("trigger_dynamics payload is too large")
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise MalformedJson("trigger_dynamics payload is not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedJson("trigger_dynamics payload is not a JSON object")
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise ValidationError("trigger_dynamics payload needs a non-empty string 'action'")
    return action


def handle_trigger_rpc(session: LocalSession | None, payload: str) -> str:
    """The whole ``trigger_dynamics`` RPC: parse, trigger (same path as the topic), reply JSON.

    ``session`` None (not registered, or already gone) answers ``animation_triggered: false``.
    Raises MalformedJson / ValidationError for a bad payload (map them to an RPC error).
    """
    action = parse_rpc_payload(payload)
    if session is None:
        return TriggerResult(action, False, None, "session_closed").rpc_payload()
    return session.trigger(action).rpc_payload()


def threadsafe_deliver(loop: asyncio.AbstractEventLoop, deliver: Deliver) -> Deliver:
    """Wrap ``deliver`` so that calls from other threads run it on ``loop`` (fire-and-forget).

    Called on the loop's own thread it runs at once (so UnknownGesture still propagates); from another
    thread it is scheduled with ``call_soon_threadsafe`` and the name was already validated.
    """

    def wrapped(action: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            deliver(action)
        else:
            loop.call_soon_threadsafe(_deliver_logged, deliver, action)

    return wrapped


def _deliver_logged(deliver: Deliver, action: str) -> None:
    try:
        deliver(action)
    except Exception:
        log.exception("gesture delivery failed", extra={"action": action})


def _outcome(result: TriggerResult) -> SessionOutcome:
    return SessionOutcome(
        session_id=result.session_id or "",
        animation_triggered=result.animation_triggered,
        reason=result.reason,
    )
