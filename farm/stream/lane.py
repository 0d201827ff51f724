"""RenderLane: every call on one session's renderer, on one dedicated thread, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from farm.render.base import Renderer

log = logging.getLogger(__name__)
T = TypeVar("T")


class RenderLane:
    """Runs every call on one session's renderer on one dedicated thread, in order.

    Renderers are not thread-safe, and ``next_frame`` may block (a cross-session batch), so neither
    the event loop nor a second thread may touch the renderer while it renders.
    """

    def __init__(self, renderer: Renderer, name: str) -> None:
        self.renderer = renderer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def post(self, fn: Callable[..., object], *args: object) -> None:
        """Fire and forget (gesture deliveries from the dynamics bus); failures are logged."""
        future = self._executor.submit(fn, *args)
        future.add_done_callback(_log_failure)

    def close(self, *, wait: bool = True) -> None:
        """Close the renderer on its own thread after every queued call; idempotent.

        ``wait=False`` (a stalled renderer) queues the close and returns at once: the thread is left
        to finish, or to stay blocked, without holding the event loop.
        """
        with contextlib.suppress(RuntimeError):  # already shut down
            self._executor.submit(self.renderer.close)
        self._executor.shutdown(wait=wait)


def _log_failure(future: Future[object]) -> None:
    exc = future.exception()
    if exc is not None:
        log.warning("renderer call failed", extra={"error": type(exc).__name__})
