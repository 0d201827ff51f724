"""What a READY render process subscribes to, as runtime middleware: gestures, speech, stop notices,
and its health endpoint.

Each subscribes in ``on_start`` (only when the pool is READY: a worker that failed prewarm takes no
session, so it needs none of them) and closes in ``on_stop``. A subscription that cannot start is
logged and the worker runs without it (the durable paths still work: stop flags are read at lease
renewals, gestures still arrive over the room's RPC).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from farm.kernel import names
from farm.kernel.contracts import SpeakMessage, StopMessage
from farm.kernel.domain import Session
from farm.kernel.settings import Settings
from farm.sessions.runner import DynamicsAttachment
from farm.worker.middleware import WorkerMiddleware

if TYPE_CHECKING:
    from farm.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)


class _Closing(WorkerMiddleware):
    """Closes what its ``on_start`` opened."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._close: Callable[[], object] | None = None

    def on_stop(self, runtime: WorkerRuntime) -> None:
        if self._close is not None:
            self._close()
            self._close = None


class DynamicsTopic(_Closing):
    """The dynamics topic (gestures fanned out by Redis) and the attachment each session gets."""

    name = "dynamics"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._dynamics: Any = None

    def on_start(self, runtime: WorkerRuntime) -> None:
        if runtime.parts.pool is None or not runtime.ready:
            return
        from farm.dynamics.worker import WorkerDynamics

        try:
            self._dynamics = WorkerDynamics.connect(str(self.settings.redis_url), runtime.worker_id)
        except Exception:
            log.exception("dynamics unavailable: gestures only from session input", extra=runtime.fields)
            return
        self._close = self._dynamics.close

    def attach(
        self, session: Session, gestures: Sequence[str], deliver: Callable[[str], None]
    ) -> DynamicsAttachment | None:
        """The runner's ``attach_dynamics``: None until (or unless) the topic is up."""
        if self._dynamics is None:
            return None
        attachment: DynamicsAttachment = self._dynamics.attach(
            session_id=session.id,
            tenant=session.tenant,
            agent_id=session.avatar_id,
            gestures=gestures,
            trigger=deliver,
        )
        return attachment


class SpeechTopic(_Closing):
    """``farm:speak``: ``POST /v1/agent/{code}/speak`` plays on the live session this process holds."""

    name = "speech"

    def on_start(self, runtime: WorkerRuntime) -> None:
        if runtime.parts.pool is None or not runtime.ready:
            return
        from farm.infra.speak import RedisSpeakBus, decode_speech

        def handle(message: SpeakMessage) -> None:
            if runtime.speak(message.session_id, *decode_speech(message)):
                log.info("speech played", extra={"session_id": message.session_id, **runtime.fields})

        try:
            bus = RedisSpeakBus(str(self.settings.redis_url))
            bus.start(handle)
        except Exception:
            log.exception("speech topic unavailable: /speak reaches no session here", extra=runtime.fields)
            return
        self._close = bus.close


class StopNotices(_Closing):
    """``farm:stop``: a client's stop request ends the session this process holds at its next frame
    rather than at its next lease renewal."""

    name = "stop-notices"

    def on_start(self, runtime: WorkerRuntime) -> None:
        if not runtime.ready:
            return
        from farm.infra.pubsub import RedisTopic

        def handle(message: StopMessage) -> None:
            if runtime.stop_session(message.session_id):
                log.info("stop notice", extra={"session_id": message.session_id, **runtime.fields})

        try:
            topic: RedisTopic[StopMessage, None] = RedisTopic(
                str(self.settings.redis_url), names.STOP_TOPIC, StopMessage
            )
            topic.start(handle)
        except Exception:
            log.exception("stop topic unavailable: stops wait for lease renewals here", extra=runtime.fields)
            return
        self._close = topic.close


class HealthEndpoint(_Closing):
    """/startupz, /readyz, /livez, /drainz (and /metrics) for Kubernetes on ``health_port``.

    One worker per pod in Kubernetes; on one machine (``farm up``, tests) several workers share the
    host, so a port already in use is logged and the worker runs without the endpoint.
    """

    name = "health"

    def __init__(self, settings: Settings, metrics: Callable[[], bytes] | None = None) -> None:
        super().__init__(settings)
        self._metrics = metrics

    def on_start(self, runtime: WorkerRuntime) -> None:
        if self.settings.health_port <= 0:
            return
        from farm.worker.health import HealthServer, WorkerHealth

        def read() -> WorkerHealth:
            progress_at = time.monotonic() - runtime.progress_age_s()
            return WorkerHealth(
                runtime.state, progress_at, live_sessions=runtime.slots.used, error=runtime.error
            )

        try:
            server = HealthServer(
                read,
                port=self.settings.health_port,
                stale_s=self.settings.progress_stale_s,
                on_drain=runtime.drain.stop_intake,
                max_drain_s=self.settings.max_session_s,
                metrics=self._metrics,
            ).start()
        except OSError:
            log.warning(
                "health endpoint not started: port in use",
                extra={**runtime.fields, "port": self.settings.health_port},
            )
            return
        self._close = server.close
