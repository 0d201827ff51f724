"""LivenessMiddleware: the worker's heart (``farm.sessions.liveness.Heart``) as runtime middleware.

The heart starts before the loop (no claim precedes the first beat) and stops after it; a lapse
(this process's key expired, so the reaper may have taken its sessions) makes every live session
stop publishing at once. ``steady`` tells this worker's reaper pass whether it may judge others.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from farm.kernel.errors import FarmError
from farm.sessions.base import SessionStore
from farm.sessions.liveness import Heart, WorkerLiveness
from farm.worker.middleware import WorkerMiddleware

if TYPE_CHECKING:
    from farm.worker.runtime import WorkerRuntime


class LivenessMiddleware(WorkerMiddleware):
    name = "liveness"

    def __init__(
        self, liveness: WorkerLiveness, store: SessionStore, *, ttl_s: float, renew_s: float
    ) -> None:
        self._liveness = liveness
        self._store = store
        self._ttl_s = ttl_s
        self._renew_s = renew_s
        self._heart: Heart | None = None

    @property
    def steady(self) -> bool:
        """True when this process's own beats have held for a whole TTL (so Redis kept the keys of
        others too): only then does its reaper pass judge other workers dead by theirs."""
        return self._heart is not None and self._heart.steady

    def on_start(self, runtime: WorkerRuntime) -> None:
        self._heart = Heart(
            self._liveness,
            runtime.worker_id,
            ttl_s=self._ttl_s,
            renew_s=self._renew_s,
            on_lapse=runtime.abandon_all,
        )
        self._heart.start()

    def on_stop(self, runtime: WorkerRuntime) -> None:
        if self._heart is None:
            return
        self._heart.stop()  # what this process still held is re-queued by the next reaper pass
        with contextlib.suppress(FarmError):
            if not self._store.leases_of(runtime.worker_id):  # else the reaper forgets it
                self._store.forget_holder(runtime.worker_id)
