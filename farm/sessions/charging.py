"""MinuteCharger: each started minute of a running session is charged once, fenced by its lease.

Minutes are counted by frames written (idle time counts; a slow file render never pays past its
prepaid minutes). The charge itself is the tenancy's (``MinuteMeter``, wired by the worker's
composition root: ``farm.tenancy.metering.meter_minute``); this only asks once per minute.

A charge that meets a Redis outage (BackendUnavailable) does not end the session: the minute stays
unpaid and is asked for again every ``RETRY_S`` while the session streams. The lease, renewed through
the same Redis, bounds how long that can last (``lease_ttl_s``). Before, a Redis restart at the
moment a session began to stream failed its first minute's charge, the runner gave the session up,
and the reaper re-queued it for a second render once Redis was back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from farm.kernel.domain import Session
from farm.kernel.errors import BackendUnavailable, LeaseLost

RETRY_S = 0.5
"""How soon a charge that met a Redis outage is asked for again (a frame check does not wait on it)."""

MinuteMeter = Callable[[Session, int, int], str]
"""(session, minute index, lease token) → ``farm.tenancy.metering.MinuteOutcome`` value: charges each
started minute of a session once, fenced by the lease (``continue``, ``out_of_credits``,
``lease_lost``)."""


class MinuteCharger:
    def __init__(self, meter: MinuteMeter | None, *, fps: int, token: int) -> None:
        self._meter = meter
        self._frames_per_minute = 60 * fps
        self._token = token
        self._charged = -1
        self._retry_at = 0.0

    async def paid(self, session: Session | None, frames: int) -> bool:
        """False when the minute that ``frames`` reached could not be paid (end the session here).

        Every minute up to that one is charged in order, so a minute left unpaid by an outage is
        charged when Redis answers again, even if the session has entered the next one since."""
        minute = frames // self._frames_per_minute
        if self._meter is None or session is None or minute <= self._charged:
            return True
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            return True  # Redis was down a moment ago: stream on, ask again soon
        for index in range(self._charged + 1, minute + 1):
            try:
                outcome = await asyncio.to_thread(self._meter, session, index, self._token)
            except BackendUnavailable:
                self._retry_at = loop.time() + RETRY_S
                return True
            if outcome == "lease_lost":
                raise LeaseLost(f"lease on session {session.id} is stale (metering fence)")
            self._charged = index
            if outcome == "out_of_credits":
                return False
        return True

    async def settle(self, session: Session | None, frames: int) -> None:
        """At the session's end: one more try at a minute an outage left unpaid (the state change
        before this call waited for Redis, so it is likely back)."""
        self._retry_at = 0.0
        await self.paid(session, frames)
