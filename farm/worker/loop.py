"""LoopThread: the one long-lived asyncio event loop of a worker process, on its own thread.

Every session of the process runs on it: the LiveKit FFI dispatches each room's events to the loop
that created the room, so rooms on private per-thread loops starve and panic. The loop also ticks
on its own (``progress_at``): a blocked loop stops ticking, which liveness probes read. A watchdog
thread notes where the loop thread is while a tick is overdue, so the warning a stall logs says how
long it lasted and what the loop was running (every session's audio, video and RPCs wait on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

TICK_S = 0.1  # the loop's own liveness tick
STALL_LOG_S = 0.2  # a tick this late means the loop was blocked: logged (it delays every session)
WATCH_S = 0.05  # how often the watchdog looks for an overdue tick
WHERE_FRAMES = 4  # innermost frames of the loop thread a stall warning names
_FARM_DIR = str(Path(__file__).resolve().parent.parent) + "/"  # frames under it are the farm's own


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
        self._stopped = threading.Event()
        self._stall_where: str | None = None  # set by the watchdog during a stall, read by the tick

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
        threading.Thread(target=self._watch, name=f"{self._name}-watchdog", daemon=True).start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop from any other thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopped.set()
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
            where, self._stall_where = self._stall_where, None
            if lag_s > STALL_LOG_S:
                lag_ms = round(lag_s * 1000.0)
                where = where or "unknown"
                log.warning(
                    "event loop blocked for %d ms, at %s",
                    lag_ms,
                    where,
                    extra={"lag_ms": lag_ms, "where": where},
                )

    def _watch(self) -> None:
        """While a tick is overdue, note once where the loop thread is (its innermost frames)."""
        while not self._stopped.wait(WATCH_S):
            thread = self._thread
            overdue = time.monotonic() - self.progress_at > TICK_S + STALL_LOG_S
            if overdue and self._stall_where is None and thread is not None and thread.ident is not None:
                self._stall_where = where_is(sys._current_frames().get(thread.ident))


def where_is(frame: FrameType | None, frames: int = WHERE_FRAMES) -> str:
    """``file:line in function`` of ``frame`` and its callers, innermost first (file: its last two
    path parts), an import's own machinery left out; when none of those is the farm's own code, the
    innermost frame that is follows after `` … ``."""
    if frame is None:
        return "unknown"
    stack = [e for e in traceback.extract_stack(frame) if not e.filename.startswith("<frozen importlib")]
    shown = list(reversed(stack[-frames:]))
    if not any(_is_farm(entry) for entry in shown):
        ours = [entry for entry in stack if _is_farm(entry)]
        if ours:
            return f"{_render(shown)} … {_render(ours[-1:])}"
    return _render(shown)


def _is_farm(entry: traceback.FrameSummary) -> bool:
    return entry.filename.startswith(_FARM_DIR)


def _render(entries: list[traceback.FrameSummary]) -> str:
    return " < ".join(f"{'/'.join(e.filename.split('/')[-2:])}:{e.lineno} in {e.name}" for e in entries)
