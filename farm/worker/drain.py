"""Drain: how a worker stops taking sessions and gives its live ones back.

* ``stop_intake`` (Kubernetes' preStop through ``/drainz``): DRAINING, no new session, the live ones
  run to their end.
* ``begin`` (Celery's warm shutdown): DRAINING now; after ``drain_grace_s`` every live session is
  handed back to the queue for another worker (``hand_back_all``), and so is any that starts later.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farm.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)


class Drain:
    def __init__(self, runtime: WorkerRuntime, grace_s: float) -> None:
        self._runtime = runtime
        self._grace_s = grace_s
        self._timer: threading.Timer | None = None
        self.expired = False  # the grace ran out: a session that starts now is handed back at once

    def stop_intake(self) -> None:
        """Take no new session (DRAINING) but keep the live ones to their end."""
        runtime = self._runtime
        if runtime.state == "READY":
            runtime.state = "DRAINING"
            runtime.publish_soon()

    def begin(self) -> None:
        """Warm shutdown began: publish DRAINING; after the grace, hand live sessions back."""
        runtime = self._runtime
        if runtime.state != "READY":
            return
        runtime.state = "DRAINING"
        runtime.beat.publish()
        self._timer = threading.Timer(self._grace_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        self.hand_back_all()

    def hand_back_all(self) -> None:
        """Ask every running session to return to the queue for another worker."""
        runners = self._runtime.slots.running()
        for runner in runners:
            runner.request_handback()
        if runners:
            log.warning("handing back live sessions", extra={**self._runtime.fields, "count": len(runners)})

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
