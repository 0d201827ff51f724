"""MemoryCeiling: a worker past its RSS ceiling turns ERROR and hands its sessions back.

Instead of waiting for the kernel's OOM killer (which takes every session of the process down with
no hand-back), the worker stops taking sessions, returns the live ones to the queue for other
workers and fails its liveness probe, so Kubernetes restarts it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from farm.worker.middleware import WorkerMiddleware

if TYPE_CHECKING:
    from farm.worker.runtime import WorkerRuntime


def rss_mb_now() -> float:
    """Resident set size of this process in MB (Linux ``/proc/self/statm``)."""
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemoryCeiling(WorkerMiddleware):
    """``limit_mb`` of RSS (0: off), checked on every heartbeat tick."""

    name = "memory"

    def __init__(self, limit_mb: float, rss_mb: Callable[[], float] = rss_mb_now) -> None:
        self.limit_mb = limit_mb
        self._rss_mb = rss_mb

    def on_tick(self, runtime: WorkerRuntime) -> None:
        if self.limit_mb <= 0 or runtime.state == "ERROR":
            return
        rss_mb = self._rss_mb()
        if rss_mb > self.limit_mb:
            runtime.fail(f"RSS {rss_mb:.0f} MB passed the {self.limit_mb:.0f} MB ceiling")
