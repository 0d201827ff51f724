"""Dynamics in a render worker process: one subscription, one registry, sessions attach and detach.

A worker process builds one ``WorkerDynamics`` at start (``WorkerDynamics.connect(redis_url,
worker_id)``) and closes it at shutdown. Each running session calls ``attach`` once its renderer is
open, and ``AttachedSession.detach`` when it ends:

    attached = dynamics.attach(session_id=s.id, tenant=s.tenant, agent_id=s.avatar_id,
                               gestures=renderer.gestures, trigger=renderer.trigger)

From then on the topic reaches the session, ``attached.trigger`` is the one debounced path for a
``Gesture`` input event, ``attached.rpc(payload)`` answers ``trigger_dynamics`` and
``attached.watch(reader)`` applies the agent's keyword rules to an ``lk.transcription`` stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from farm.dynamics.base import DynamicsBus, TriggerResult
from farm.dynamics.router import LocalSession, LocalSessions, handle_trigger_rpc, threadsafe_deliver
from farm.dynamics.rules import DynamicsConfig, RulesStore
from farm.dynamics.transcripts import TextStream, TranscriptWatcher, watch_text_stream, watcher_for
from farm.kernel.errors import FarmError

log = logging.getLogger(__name__)


@dataclass
class AttachedSession:
    """A running session as dynamics sees it; every method may be called from the session's loop."""

    session: LocalSession
    transcripts: TranscriptWatcher
    _local: LocalSessions

    def trigger(self, action: str) -> TriggerResult:
        """Debounced trigger (use it for ``Gesture`` input events instead of ``renderer.trigger``)."""
        return self.session.trigger(action)

    def rpc(self, payload: str) -> str:
        """The ``trigger_dynamics`` reply; raises MalformedJson/ValidationError for a bad payload."""
        return handle_trigger_rpc(self.session, payload)

    async def watch(self, reader: TextStream) -> list[TriggerResult]:
        """Apply the agent's keyword rules to one ``lk.transcription`` text stream."""
        return await watch_text_stream(self.transcripts, reader)

    def detach(self) -> None:
        """Stop routing to this session (idempotent)."""
        self._local.unregister(self.session.session_id)


class WorkerDynamics:
    """The dynamics side of one worker process."""

    def __init__(self, local: LocalSessions, bus: DynamicsBus, rules: RulesStore) -> None:
        self.local = local
        self.bus = bus
        self.rules = rules

    @classmethod
    def connect(cls, redis_url: str, worker_id: str) -> WorkerDynamics:
        """Subscribe this process to the dynamics topic of ``redis_url`` (in the background)."""
        from farm.dynamics.redis_bus import RedisDynamicsBus
        from farm.dynamics.rules import RedisRulesStore
        from farm.infra.redis_conn import connect

        dynamics = cls(
            LocalSessions(worker_id),
            RedisDynamicsBus(redis_url, worker_id=worker_id),
            RedisRulesStore(connect(redis_url)),
        )
        dynamics.start()
        return dynamics

    def start(self) -> None:
        self.bus.start(self.local.handle)

    def attach(
        self,
        *,
        session_id: str,
        tenant: str,
        agent_id: str | None,
        gestures: Iterable[str],
        trigger: Callable[[str], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> AttachedSession:
        """Register a running session; ``trigger`` (the renderer's) runs on ``loop`` (default: the
        running loop). The agent's cooldowns and rules are read now; a later PUT applies to later
        sessions."""
        config = self._config(agent_id, session_id)
        deliver = threadsafe_deliver(loop or asyncio.get_running_loop(), trigger)
        session = self.local.register(
            session_id, tenant, agent_id, gestures, deliver, cooldowns_s=config.cooldowns_s
        )
        return AttachedSession(session, watcher_for(session, config), self.local)

    def _config(self, agent_id: str | None, session_id: str) -> DynamicsConfig:
        if agent_id is None:
            return DynamicsConfig()
        try:
            return self.rules.get(agent_id)
        except FarmError:
            log.warning("dynamics rules unavailable; defaults apply", extra={"session_id": session_id})
            return DynamicsConfig()

    def close(self) -> None:
        self.bus.close()
