"""The frame pump keeps the voice on the audio clock: slow renders lose pictures, never speech time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from farm.render.base import SAMPLES_PER_FRAME, AvatarFrame
from farm.stream.base import ClearBuffer, InputClosed, InputEvent, SegmentEnd, SpeechChunk
from farm.stream.lane import RenderLane
from farm.stream.pump import LEAD_S, MAX_LAG_S, SLACK_S, FramePump, PumpEnd

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

FRAME_S = 0.04


class FakeClock:
    """Time moves only when the pump sleeps or a render costs time: runs are exact and instant."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


class CostlyRenderer:
    """A Renderer whose images cost ``render_s`` of (fake) time; skipped frames cost nothing."""

    def __init__(self, clock: FakeClock, render_s: float, stall_at: int | None = None) -> None:
        self.clock, self.render_s, self.stall_at = clock, render_s, stall_at
        self.audio = np.zeros(0, np.int16)
        self.index = 0
        self.interrupts = 0

    gestures: tuple[str, ...] = ()
    frame_size = (8, 8)

    def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        self.audio = np.concatenate([self.audio, np.asarray(pcm, np.int16)])

    def flush(self) -> None:
        pass

    def interrupt(self) -> None:
        self.interrupts += 1
        self.audio = np.zeros(0, np.int16)

    def trigger(self, gesture: str) -> None:
        pass

    def pending_frames(self) -> int:
        return -(-self.audio.size // SAMPLES_PER_FRAME)

    def next_frame(self, render: bool = True) -> AvatarFrame:
        chunk, self.audio = self.audio[:SAMPLES_PER_FRAME], self.audio[SAMPLES_PER_FRAME:]
        audio = np.zeros(SAMPLES_PER_FRAME, np.int16)
        audio[: chunk.size] = chunk
        image = None
        if render:
            self.clock.t += 1.0 if self.index == self.stall_at else self.render_s
            image = np.zeros((8, 8, 3), np.uint8)
        frame = AvatarFrame(
            self.index, image, audio, chunk.size > 0, 1 if chunk.size else None, False, None, 0.0
        )
        self.index += 1
        return frame

    def close(self) -> None:
        pass


class TimedSink:
    """A room-like sink that notes the (fake) time each frame was handed to it."""

    def __init__(self, clock: FakeClock, realtime: bool = True) -> None:
        self.clock, self._realtime = clock, realtime
        self.writes: list[tuple[float, AvatarFrame]] = []

    @property
    def realtime(self) -> bool:
        return self._realtime

    async def start(self) -> None:
        pass

    async def write(self, frame: AvatarFrame) -> None:
        self.writes.append((self.clock.now(), frame))

    async def aclose(self) -> None:
        pass


def speech(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(-8000, 8000, int(seconds * 16_000), dtype=np.int16)


async def events_of(*items: InputEvent) -> AsyncIterator[InputEvent]:
    for item in items:
        yield item


async def never_end() -> str | None:
    return None


async def pump_clip(render_s: float, seconds: float = 2.0, *, stall_at: int | None = None) -> tuple:
    clock = FakeClock()
    renderer = CostlyRenderer(clock, render_s, stall_at)
    sink = TimedSink(clock)
    lane = RenderLane(renderer, "pump-test")  # type: ignore[arg-type]
    pump = FramePump(lane, sink, fps=25, max_queued_s=600.0, clock=clock)
    clip = speech(seconds)
    try:
        reason = await pump.run(
            events_of(SpeechChunk(clip, 16_000), SegmentEnd(), InputClosed("done")), never_end
        )
    finally:
        lane.close()
    return reason, pump, sink, clip


def audio_of(sink: TimedSink) -> np.ndarray:
    return np.concatenate([f.audio for _, f in sink.writes if f.speaking])


def lateness_s(sink: TimedSink) -> list[float]:
    """How late each speaking frame reached the sink against a steady 25 fps audio timeline."""
    times = [t for t, f in sink.writes if f.speaking]
    return [t - (times[0] + k * FRAME_S) for k, t in enumerate(times)]


async def test_a_fast_renderer_shows_every_picture_on_time() -> None:
    reason, pump, sink, clip = await pump_clip(render_s=0.005)
    assert reason == PumpEnd.INPUT_CLOSED
    assert np.array_equal(audio_of(sink)[: clip.size], clip)
    assert pump.stats.skipped == 0 and pump.stats.resyncs == 0
    assert max(lateness_s(sink)) <= SLACK_S


async def test_a_renderer_slower_than_real_time_loses_pictures_not_speech_time() -> None:
    reason, pump, sink, clip = await pump_clip(render_s=0.1)  # 2.5x slower than the 40 ms budget
    assert reason == PumpEnd.INPUT_CLOSED
    assert np.array_equal(audio_of(sink)[: clip.size], clip)  # every sample, in order
    assert max(lateness_s(sink)) <= FRAME_S + SLACK_S  # the voice keeps the 25 fps timeline
    assert pump.stats.resyncs == 0
    assert pump.stats.skipped > 0 and pump.stats.rendered > 0
    speaking = [f for _, f in sink.writes if f.speaking]
    assert 0.2 < sum(f.image is not None for f in speaking) / len(speaking) < 0.6  # ~1 in 2.5 drawn


async def test_a_stall_longer_than_the_lag_bound_is_one_gap_not_a_burst() -> None:
    _, pump, sink, clip = await pump_clip(render_s=0.005, stall_at=10)
    assert pump.stats.resyncs == 1
    assert np.array_equal(audio_of(sink)[: clip.size], clip)  # nothing dropped
    times = [t for t, _ in sink.writes]
    gaps = np.diff(times)
    assert gaps.max() >= 1.0 - LEAD_S  # the stall
    after = times[12:]
    assert min(np.diff(after)) >= 0.0 and np.median(np.diff(after)) == pytest.approx(FRAME_S)  # no burst


async def test_a_file_sink_renders_every_frame_however_slow() -> None:
    clock = FakeClock()
    renderer = CostlyRenderer(clock, render_s=0.5)
    sink = TimedSink(clock, realtime=False)
    lane = RenderLane(renderer, "pump-file")  # type: ignore[arg-type]
    pump = FramePump(lane, sink, fps=25, max_queued_s=600.0, clock=clock)
    clip = speech(0.4)
    try:
        await pump.run(events_of(SpeechChunk(clip, 16_000), SegmentEnd(), InputClosed("done")), never_end)
    finally:
        lane.close()
    assert len(sink.writes) == 10 and all(f.image is not None for _, f in sink.writes)


async def test_an_interrupt_empties_the_renderers_queue() -> None:
    clock = FakeClock()
    renderer = CostlyRenderer(clock, render_s=0.001)
    sink = TimedSink(clock)
    lane = RenderLane(renderer, "pump-clear")  # type: ignore[arg-type]
    pump = FramePump(lane, sink, fps=25, max_queued_s=600.0, clock=clock)
    try:
        await pump.run(
            events_of(SpeechChunk(speech(5.0), 16_000), ClearBuffer(), InputClosed("done")), never_end
        )
    finally:
        lane.close()
    assert renderer.interrupts == 1
    assert sum(f.speaking for _, f in sink.writes) < 5 * 25  # the rest of the speech was dropped


async def test_should_end_stops_the_pump_with_its_reason() -> None:
    clock = FakeClock()
    renderer = CostlyRenderer(clock, render_s=0.001)
    sink = TimedSink(clock)
    lane = RenderLane(renderer, "pump-end")  # type: ignore[arg-type]
    pump = FramePump(lane, sink, fps=25, max_queued_s=600.0, clock=clock)

    async def after_five() -> str | None:
        return "stop requested" if pump.stats.frames >= 5 else None

    try:
        reason = await pump.run(events_of(SpeechChunk(speech(5.0), 16_000)), after_five)
    finally:
        lane.close()
    assert reason == "stop requested" and pump.stats.frames == 5


def test_the_lag_bound_leaves_room_for_the_lead() -> None:
    assert MAX_LAG_S > LEAD_S + SLACK_S


async def test_a_room_that_is_gone_ends_the_pump_at_once_with_speech_still_queued() -> None:
    clock = FakeClock()
    renderer = CostlyRenderer(clock, render_s=0.001)
    sink = TimedSink(clock)
    lane = RenderLane(renderer, "pump-gone")  # type: ignore[arg-type]
    pump = FramePump(lane, sink, fps=25, max_queued_s=600.0, clock=clock)
    try:
        reason = await pump.run(
            events_of(SpeechChunk(speech(10.0), 16_000), InputClosed("room closed", drain=False)), never_end
        )
    finally:
        lane.close()
    assert reason == PumpEnd.INPUT_CLOSED
    assert sum(f.speaking for _, f in sink.writes) < 25  # not the 250 frames of queued speech


class SegmentRenderer(CostlyRenderer):
    """Marks the last frame of a flushed segment, as the engines do."""

    flushed = False

    def flush(self) -> None:
        self.flushed = True

    def next_frame(self, render: bool = True) -> AvatarFrame:
        frame = super().next_frame(render)
        if frame.speaking and self.flushed and self.audio.size == 0:
            self.flushed = False
            return AvatarFrame(frame.index, frame.image, frame.audio, True, 1, True, None, 0.0)
        return frame


async def test_speech_that_arrives_late_is_a_counted_gap_never_a_wait() -> None:
    """An agent whose stream falls behind real time: the clock does not wait for it; the silent frames
    inside the open segment are counted as starved, and none after the segment ended."""
    clock = FakeClock()
    renderer = SegmentRenderer(clock, render_s=0.001)
    sink = TimedSink(clock)
    lane = RenderLane(renderer, "pump-starved")  # type: ignore[arg-type]
    pump = FramePump(lane, sink, fps=25, max_queued_s=600.0, clock=clock)

    async def late_agent() -> AsyncIterator[InputEvent]:
        yield SpeechChunk(speech(0.2), 16_000)  # 5 frames, then the stream stalls
        while len(sink.writes) < 12:
            await asyncio.sleep(0)
        yield SpeechChunk(speech(0.2), 16_000)
        yield SegmentEnd()
        while len(sink.writes) < 30:
            await asyncio.sleep(0)
        yield InputClosed("done")

    try:
        await pump.run(late_agent(), never_end)
    finally:
        lane.close()
    speaking = [i for i, (_, f) in enumerate(sink.writes) if f.speaking]
    gap = speaking[-1] - speaking[0] + 1 - len(speaking)  # silent frames between the segment's first and last
    assert gap > 0 and pump.stats.starved == gap
    assert sink.writes[speaking[-1]][1].segment_end
