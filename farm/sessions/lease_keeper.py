"""LeaseKeeper: renews one running session's lease, and gives it up when the session makes no progress.

A refused renewal, or none for a whole ``lease_ttl_s``, loses the lease (another worker may own the
session now). Renewal proves progress, not only that this loop runs: a session whose last step
forward is older than ``stall_timeout_s`` (``start_timeout_s`` while starting) is not renewed; the
keeper calls ``on_stall`` so the runner cancels the run and releases the lease, and the reaper
re-queues it for another worker. Each renewal also reads the session's stop flag (one round trip).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from farm.kernel.errors import BackendUnavailable
from farm.kernel.settings import Settings
from farm.sessions.base import Lease, SessionStore

log = logging.getLogger(__name__)

RETRY_S = 0.5  # a renewal that met a Redis outage is retried this soon, before the TTL runs out


class LeaseKeeper:
    """``run()`` on the session's event loop until the lease is lost or the task is cancelled."""

    def __init__(
        self,
        store: SessionStore,
        lease: Lease,
        settings: Settings,
        *,
        progress_at: Callable[[], float],
        streaming: Callable[[], bool],
        on_stall: Callable[[], None],
        on_stop: Callable[[], None],
    ) -> None:
        self._store = store
        self._lease = lease
        self._settings = settings
        self._progress_at = progress_at  # time.monotonic() of the session's last step forward
        self._streaming = streaming
        self._on_stall = on_stall
        self._on_stop = on_stop
        self._lost = False

    @property
    def lost(self) -> bool:
        """True once the lease is gone: refused, lapsed, or given up after a stall."""
        return self._lost

    async def run(self) -> None:
        settings = self._settings
        last_ok = time.monotonic()
        wait_s = settings.lease_renew_s
        while not self._lost:
            await asyncio.sleep(wait_s)
            wait_s = settings.lease_renew_s
            limit_s = settings.stall_timeout_s if self._streaming() else settings.start_timeout_s
            if time.monotonic() - self._progress_at() > limit_s:
                self._lost = True
                self._on_stall()
                return
            try:
                ok, stop = await asyncio.to_thread(
                    self._store.renew_and_check_stop, self._lease, settings.lease_ttl_s
                )
                if stop:
                    self._on_stop()
            except BackendUnavailable:
                ok = time.monotonic() - last_ok < settings.lease_ttl_s
                wait_s = min(wait_s, RETRY_S)
                log.warning(
                    "lease renewal failed: backend unavailable",
                    extra={"session_id": self._lease.session_id, "worker_id": self._lease.worker_id},
                )
            else:
                last_ok = time.monotonic() if ok else last_ok
            if not ok:
                self._lost = True
