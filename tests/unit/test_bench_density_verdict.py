"""``farm bench density`` counts a step only when the voice held: frames on time with a slowed voice or
a lost interrupt do not make a session count."""

from __future__ import annotations

from typing import Any

import pytest

from farm.bench.density import _voice_intact

pytestmark = pytest.mark.unit


def step(p95: float | None, sent: int = 4, honoured: int = 4) -> dict[str, Any]:
    stretch = {} if p95 is None else {"n": 8, "median": 1.0, "p95": p95}
    return {"speech_stretch": stretch, "interrupts": {"sent": sent, "honoured": honoured}}


def test_voice_within_five_percent_and_every_interrupt_counts() -> None:
    assert _voice_intact(step(1.04), 0.05)
    assert _voice_intact(step(0.97), 0.05)


def test_a_stretched_voice_does_not_count() -> None:
    assert not _voice_intact(step(1.325), 0.05)
    assert _voice_intact(step(1.325), 0.5)  # the bound is the caller's


def test_a_lost_interrupt_does_not_count() -> None:
    assert not _voice_intact(step(1.01, sent=12, honoured=9), 0.05)


def test_no_measured_speech_does_not_count() -> None:
    assert not _voice_intact(step(None), 0.05)
