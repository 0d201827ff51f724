"""LoopThread: the one long-lived asyncio event loop of a worker process, on its own thread.

Every session of the process runs on it: the LiveKit FFI dispatches each room's events to the loop
that created the room, so rooms on private per-thread loops starve and panic. The loop also ticks
on its own (``progress_at``): a blocked loop stops ticking, which liveness probes read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

TICK_S = 0.1  # the loop's own liveness tick
STALL_LOG_S = 0.2  # a tick this late means the loop was blocked: logged (it delays every session)


class LoopThread:
    """``start()`` runs a fresh event loop on a daemon thread; ``stop()`` ends it and its tasks."""

    def __init__(self, name: str = "farm-runtime") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._ticker: Future[None] | None = None
        self.progress_at = time.monotonic()
        self.max_lag_s = 0.0  # the longest the loop was late for a tick since the last reading

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the worker runtime is not started")
        return self._loop

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()
        self._ticker = self.submit(self._tick())

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop from any other thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=timeout_s)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _tick(self) -> None:
        """The loop's own liveness tick, apart from the heartbeat: a Redis call that hangs delays the
        heartbeat, not this; only a blocked loop stops ticking."""
        while True:
            before = time.monotonic()
            self.progress_at = before
            await asyncio.sleep(TICK_S)
            lag_s = time.monotonic() - before - TICK_S
            self.max_lag_s = max(self.max_lag_s, lag_s)
            if lag_s > STALL_LOG_S:
                log.warning("event loop blocked", extra={"lag_ms": round(lag_s * 1000.0)})
