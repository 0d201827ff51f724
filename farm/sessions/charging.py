"""MinuteCharger: each started minute of a running session is charged once, fenced by its lease.

Minutes are counted by frames written (idle time counts; a slow file render never pays past its
prepaid minutes). The charge itself is the tenancy's (``MinuteMeter``, wired by the worker's
composition root: ``farm.tenancy.metering.meter_minute``); this only asks once per minute.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from farm.kernel.domain import Session
from farm.kernel.errors import LeaseLost

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

    async def paid(self, session: Session | None, frames: int) -> bool:
        """False when the minute that ``frames`` reached could not be paid (end the session here)."""
        minute = frames // self._frames_per_minute
        if self._meter is None or session is None or minute <= self._charged:
            return True
        outcome = await asyncio.to_thread(self._meter, session, minute, self._token)
        if outcome == "lease_lost":
            raise LeaseLost(f"lease on session {session.id} is stale (metering fence)")
        self._charged = minute
        return outcome != "out_of_credits"
