"""Pacing frames on the 40 ms grid: no drift under sleep jitter, re-anchoring after a stall."""

from __future__ import annotations

import itertools

import pytest

from farm.render.essence import EssenceRenderer, LoadedAvatar
from farm.render.pacing import PaceStats, paced

pytestmark = pytest.mark.unit


class FakeTime:
    """A clock that only moves when the pacer sleeps (plus a fixed oversleep) or work is simulated."""

    def __init__(self, oversleep_s: float = 0.0) -> None:
        self.now = 100.0
        self.oversleep_s = oversleep_s
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep_s


async def test_items_are_released_on_the_grid_without_drift() -> None:
    fake = FakeTime(oversleep_s=0.003)
    released = []
    async for _ in paced(range(100), clock=fake.clock, sleep=fake.sleep):
        released.append(fake.now)
    # each release is at most one oversleep late, never accumulating over 100 frames
    for k, at in enumerate(released):
        assert 100.0 + k * 0.04 <= at + 1e-9 <= 100.0 + k * 0.04 + 0.0031


async def test_a_stall_re_anchors_the_grid_instead_of_bursting() -> None:
    fake = FakeTime()
    stats = PaceStats()
    times = []
    async for k in paced(range(20), clock=fake.clock, sleep=fake.sleep, stats=stats, max_lag_frames=3):
        times.append(fake.now)
        if k == 5:
            fake.now += 1.0  # the consumer stalls for a second
    assert stats.resyncs == 1 and stats.released == 20
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times[7:])]
    assert gaps == [0.04] * len(gaps)


async def test_a_renderer_is_paced_frame_by_frame(essence_avatar: LoadedAvatar) -> None:
    fake = FakeTime()
    renderer = EssenceRenderer(essence_avatar, "s")
    indices = []
    async for frame in paced(renderer, clock=fake.clock, sleep=fake.sleep):
        indices.append((frame.index, round(fake.now - 100.0, 6)))
        if len(indices) == 5:
            break
    assert indices == [(0, 0.0), (1, 0.04), (2, 0.08), (3, 0.12), (4, 0.16)]
