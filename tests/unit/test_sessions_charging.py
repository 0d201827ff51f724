"""MinuteCharger: each started minute charged once, in order; a Redis outage defers a charge instead of
ending the session (before, it failed the run and the reaper re-rendered the session)."""

from __future__ import annotations

import asyncio

import pytest

from farm.kernel.domain import ModelKind, Session
from farm.kernel.errors import BackendUnavailable, LeaseLost
from farm.sessions import charging
from farm.sessions.charging import MinuteCharger

pytestmark = pytest.mark.unit

FPS = 25
MINUTE = 60 * FPS
SESSION = Session(id="s" * 32, tenant="t", model=ModelKind.ESSENCE)


class Meter:
    """A MinuteMeter whose answers the test sets: Redis down, or an outcome per call."""

    def __init__(self) -> None:
        self.down = False
        self.outcome = "continue"
        self.charged: list[int] = []
        self.calls = 0

    def __call__(self, session: Session, minute: int, token: int) -> str:
        self.calls += 1
        if self.down:
            raise BackendUnavailable("redis is unavailable: ConnectionError")
        self.charged.append(minute)
        return self.outcome


def test_each_minute_is_charged_once_when_it_starts() -> None:
    async def run() -> None:
        meter = Meter()
        charger = MinuteCharger(meter, fps=FPS, token=7)
        for frames in (0, 1, MINUTE - 1, MINUTE, MINUTE + 1, 2 * MINUTE):
            assert await charger.paid(SESSION, frames)
        assert meter.charged == [0, 1, 2]

    asyncio.run(run())


def test_an_outage_defers_the_charge_and_the_session_streams_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charging, "RETRY_S", 0.05)

    async def run() -> None:
        meter = Meter()
        charger = MinuteCharger(meter, fps=FPS, token=7)
        meter.down = True
        assert await charger.paid(SESSION, 0)  # Redis down at the first frame: stream on
        assert await charger.paid(SESSION, 1)  # asked again only after RETRY_S, not every frame
        assert meter.calls == 1 and meter.charged == []
        await asyncio.sleep(0.06)
        assert await charger.paid(SESSION, 2)
        assert meter.calls == 2
        meter.down = False
        await asyncio.sleep(0.06)
        assert await charger.paid(SESSION, MINUTE + 3)  # back, a minute later: both minutes, in order
        assert meter.charged == [0, 1]

    asyncio.run(run())


def test_a_minute_still_unpaid_at_the_end_is_settled_once_redis_answers() -> None:
    async def run() -> None:
        meter = Meter()
        charger = MinuteCharger(meter, fps=FPS, token=7)
        meter.down = True
        assert await charger.paid(SESSION, 0)
        meter.down = False
        await charger.settle(SESSION, 40)  # at once: the session ends inside its retry interval
        assert meter.charged == [0]
        await charger.settle(SESSION, 41)
        assert meter.charged == [0]  # nothing owed, nothing asked

    asyncio.run(run())


def test_out_of_credits_ends_the_session_and_a_stale_lease_stops_it() -> None:
    async def run() -> None:
        meter = Meter()
        meter.outcome = "out_of_credits"
        assert not await MinuteCharger(meter, fps=FPS, token=7).paid(SESSION, 0)
        meter.outcome = "lease_lost"
        with pytest.raises(LeaseLost):
            await MinuteCharger(meter, fps=FPS, token=7).paid(SESSION, 0)

    asyncio.run(run())


def test_the_worker_s_meter_reports_a_redis_it_cannot_reach_as_backend_unavailable() -> None:
    from farm.infra.procs import free_port
    from farm.tenancy.metering import meter_minute, redis_metering

    metering = redis_metering(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with pytest.raises(BackendUnavailable):
        meter_minute(metering, SESSION, 0, 7)
