"""The worker's event loop thread: a stall is logged with how long it lasted and where the loop was."""

from __future__ import annotations

import logging
import time

import pytest

from farm.worker.loop import LoopThread

pytestmark = pytest.mark.unit


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # synchronous work on the loop: what the warning must point at


async def _blocking_step(seconds: float) -> None:
    _hold_the_loop(seconds)


def test_a_blocked_loop_is_logged_with_its_length_and_the_code_that_held_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = LoopThread("test-loop")
    loop.start()
    try:
        with caplog.at_level(logging.WARNING, logger="farm.worker.loop"):
            loop.submit(_blocking_step(0.6)).result(timeout=5)
            deadline = time.monotonic() + 5
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        loop.stop()

    (record,) = caplog.records
    assert record.getMessage().startswith("event loop blocked for ")
    assert 400 <= record.lag_ms < 5000  # type: ignore[attr-defined]
    assert record.where.startswith("unit/test_worker_loop.py:")  # type: ignore[attr-defined]
    assert "in _hold_the_loop < " in record.where  # type: ignore[attr-defined]
    assert "in _blocking_step" in record.where  # type: ignore[attr-defined]
    # none of the innermost frames is the farm's: the innermost one that is follows
    assert " … worker/loop.py:" in record.where  # type: ignore[attr-defined]
    assert loop.max_lag_s >= 0.4


def test_a_loop_that_keeps_ticking_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    loop = LoopThread("test-loop")
    loop.start()
    try:
        with caplog.at_level(logging.WARNING, logger="farm.worker.loop"):
            time.sleep(0.5)
    finally:
        loop.stop()
    assert caplog.records == []
