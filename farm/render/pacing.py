"""Pace frames onto a fixed 40 ms grid without drift.

Renderers are pull-based (one ``next_frame()`` per 40 ms tick, as fast as asked); a real-time sink
such as the LiveKit publisher needs them at wall-clock rate. ``paced`` releases item ``k`` at
``t0 + k / fps`` measured from the first item, so sleep jitter never accumulates. When the consumer
falls more than ``max_lag_frames`` behind (a stall), it re-anchors the grid at "now" instead of
bursting the backlog out, and counts that in ``PaceStats.resyncs``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from farm.render.base import FPS, AvatarFrame, Renderer

T = TypeVar("T")


@dataclass
class PaceStats:
    """What the pacer observed: items released, grid re-anchors, worst lateness in ms."""

    released: int = 0
    resyncs: int = 0
    max_late_ms: float = 0.0


async def _items(source: Renderer | Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(source, Renderer):
        while True:
            yield source.next_frame()
    elif isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


async def paced(
    source: Renderer | Iterable[T] | AsyncIterable[T],
    *,
    fps: int = FPS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    max_lag_frames: int = 5,
    stats: PaceStats | None = None,
) -> AsyncIterator[T | AvatarFrame]:
    """Yield the items of ``source`` (a Renderer's frames, forever, or any iterable) at ``fps``."""
    period = 1.0 / fps
    stats = stats if stats is not None else PaceStats()
    anchor: float | None = None
    slot = 0
    async for item in _items(source):
        now = clock()
        if anchor is None:
            anchor = now
        deadline = anchor + slot * period
        if now < deadline:
            result = sleep(deadline - now)
            if inspect.isawaitable(result):
                await result
        else:
            late = now - deadline
            stats.max_late_ms = max(stats.max_late_ms, late * 1000.0)
            if late > max_lag_frames * period:
                anchor, slot = now, 0
                stats.resyncs += 1
        slot += 1
        stats.released += 1
        yield item
