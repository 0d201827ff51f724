"""Slots: the live sessions of a worker process and the ones it reserved a place for.

A slot is reserved before a session is claimed (so a worker never takes more than it may), filled
by its runner once claimed, and always released in a ``finally``. The frame counters of sessions
that left the process are kept so the registry entry reports totals since the process started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from farm.sessions.runner import SessionRunner


class Slots:
    """Thread-safe: the runtime's loop, Celery's threads and the heartbeat all read it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._runners: dict[str, SessionRunner] = {}
        self._reserved = 0  # claimed slots whose runner is not built yet
        self._lock = threading.RLock()
        self._ended_frames = 0
        self._ended_late = 0

    @property
    def used(self) -> int:
        with self._lock:
            return len(self._runners) + self._reserved

    def reserve(self, admit: Callable[[int], int]) -> bool:
        """Take a place if ``admit(free places)`` leaves at least one (evaluated under the lock)."""
        with self._lock:
            if admit(self.capacity - self.used) <= 0:
                return False
            self._reserved += 1
            return True

    def register(self, session_id: str, runner: SessionRunner) -> bool:
        """The reserved place now holds ``runner``; True (always) so callers can chain a check."""
        with self._lock:
            self._reserved -= 1
            self._runners[session_id] = runner
        return True

    def release(self, session_id: str, runner: SessionRunner | None) -> None:
        """Free the place of ``session_id`` (its runner, or the reservation if it never ran)."""
        with self._lock:
            if runner is None:
                self._reserved -= 1
                return
            if self._runners.pop(session_id, None) is not None:
                self._ended_frames += runner.stats.frames
                self._ended_late += runner.stats.late

    def runner(self, session_id: str) -> SessionRunner | None:
        with self._lock:
            return self._runners.get(session_id)

    def running(self) -> list[SessionRunner]:
        with self._lock:
            return list(self._runners.values())

    def frame_counters(self) -> tuple[int, int]:
        """(frames, late frames) of every session this process ran or runs, since it started."""
        with self._lock:
            runners = list(self._runners.values())
            frames, late = self._ended_frames, self._ended_late
        return frames + sum(r.stats.frames for r in runners), late + sum(r.stats.late for r in runners)
