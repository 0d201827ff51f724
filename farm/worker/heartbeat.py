"""Heartbeat: a worker's registry entry, its maintenance passes and its middleware ticks.

Every ``heartbeat_s`` it runs the middleware's ``on_tick`` (memory ceiling, admission's cost
sample, metrics gauges) and publishes the worker's entry; every ``reaper_interval_s`` it runs the
maintenance passes (reaper, rescuer). Redis being down (an outage, a failover) is transient here:
each step logs, and while Redis keeps failing the publish and maintenance intervals back off
(doubling, capped), so a long outage costs a few calls per worker, not a stream of them. No error
ends the heartbeat: a dead heartbeat would let the registry entry lapse for good.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from farm.infra.backoff import Backoff
from farm.kernel.contracts import WorkerInfo
from farm.kernel.errors import BackendUnavailable, FarmError
from farm.sessions.base import WorkerRegistry

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0  # longest pause between heartbeat Redis calls while Redis keeps failing


@dataclass
class Heartbeat:
    """Publishes ``entry()`` to ``registry`` and runs ``maintenance`` while the worker lives."""

    registry: WorkerRegistry
    entry: Callable[[], WorkerInfo]
    ticks: Callable[[], None]  # the middleware's on_tick, in order
    maintenance: Sequence[Callable[[], object]]
    may_maintain: Callable[[], bool]  # only a READY worker runs reaper passes
    heartbeat_s: float
    maintenance_s: float
    ttl_s: float
    fields: dict[str, object]

    def __post_init__(self) -> None:
        self._publish_backoff = Backoff(first_s=self.heartbeat_s, max_s=MAX_BACKOFF_S)
        self._maintain_backoff = Backoff(first_s=self.maintenance_s, max_s=MAX_BACKOFF_S)

    def publish(self) -> bool:
        """Publish the entry once; False (logged) when the registry is unavailable."""
        try:
            self.registry.publish(self.entry(), ttl_s=self.ttl_s)
        except FarmError as exc:
            log.warning("registry publish failed", extra={**self.fields, "code": exc.code})
            return False
        return True

    async def run(self) -> None:
        interval_s = min(self.heartbeat_s, self.maintenance_s, 0.5)
        next_publish = next_maintenance = time.monotonic()
        while True:
            now = time.monotonic()
            try:
                if now >= next_publish:
                    await asyncio.to_thread(self.ticks)
                    published = await asyncio.to_thread(self.publish)
                    next_publish = now + self._publish_backoff.after(published, floor_s=self.heartbeat_s)
                if now >= next_maintenance and self.may_maintain():
                    maintained = await asyncio.to_thread(self.maintain)
                    next_maintenance = now + self._maintain_backoff.after(
                        maintained, floor_s=self.maintenance_s
                    )
            except Exception:  # a bug in one step must not end the heartbeat
                log.exception("heartbeat step failed", extra=self.fields)
            await asyncio.sleep(interval_s)

    def maintain(self) -> bool:
        """Run each maintenance pass; False when Redis was unavailable for any of them."""
        reachable = True
        for task in self.maintenance:
            try:
                task()
            except BackendUnavailable as exc:  # transient: the next pass (backed off) tries again
                reachable = False
                log.warning(
                    "maintenance pass skipped: redis unavailable", extra={**self.fields, "error": exc.message}
                )
            except Exception:
                log.exception("maintenance pass failed", extra=self.fields)
        return reachable
