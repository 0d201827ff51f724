"""FramePump: audio in, frames and audio out, interrupts; the audio is the clock.

One pump per running session, on the worker's event loop. It applies the session's input events to
its renderer (on the session's RenderLane: speech, segment ends, interrupts, gestures) and writes
one ``AvatarFrame`` per 40 ms to the sink. It knows nothing of rooms, files, leases or credits:
the SessionRunner wires a session to it and decides, through ``should_end``, when to stop.

Real-time sinks (a LiveKit room): the audio timeline is the clock and is never stretched. Frame
``k`` is due at ``t0 + k / fps``; while speech is queued the pump works up to the sink's jitter
buffer ahead of that grid (``FrameSink.lead_s``: the room's audio queue), so a stall of the worker's
event loop shorter than that never reaches the listener; while idle it stays only ``IDLE_LEAD_S``
ahead, so the next answer does not queue behind much silence. Before each frame it asks whether
the image can be ready in time: when the session's measured render time says it cannot, the frame
is taken *without* its image (``next_frame(render=False)``: its audio, mouth and gesture state
still advance) and the viewer keeps the previous picture a little longer. So a worker that falls
behind delivers fewer pictures per second, never slower speech. Only a stall longer than
``MAX_LAG_S`` (a render that blocked, a paused process) re-anchors the grid: that gap is counted in
``PumpStats.resyncs``.

File sinks (an MP4): every frame is rendered, as fast as it can be; the pump waits for input when
nothing is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from farm.kernel.errors import UnknownGesture
from farm.render.base import AvatarFrame
from farm.stream.base import ClearBuffer, FrameSink, Gesture, InputClosed, InputEvent, SegmentEnd, SpeechChunk
from farm.stream.lane import RenderLane

log = logging.getLogger(__name__)

LEAD_S = 0.08  # how far ahead of its due time a frame may be produced, for sinks that do not say
IDLE_LEAD_S = 0.06  # ahead of the grid while no speech is queued (what a new answer waits behind)
SLACK_S = 0.04  # an image may be ready this late and still be shown; later, it is skipped
MAX_LAG_S = 0.4  # behind the grid by this much more than the sink buffers (a stall): re-anchor
RENDER_EWMA = 0.2  # weight of the newest render time in the session's estimate
_IDLE_POLL_S = 0.25  # file sinks: how long to wait for input before looking again


class PumpEnd(enum.StrEnum):
    INPUT_CLOSED = "input closed"


class PumpClock(Protocol):
    """Time as the pump sees it (the event loop's clock in production; a fake one in tests)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


ShouldEnd = Callable[[], Awaitable[str | None]]
"""Asked before every frame; a reason (any string) ends the pump with it."""
GestureHook = Callable[[str], object]
"""Routes a gesture through the worker's dynamics layer (debounce, dedup) instead of straight in."""


@dataclass
class PumpStats:
    """What a pump did; the worker's metrics and the benches read it."""

    frames: int = 0  # frames written to the sink: their audio always plays
    rendered: int = 0  # of those, frames that carried a new image
    skipped: int = 0  # images skipped to keep up with the audio clock (the viewer saw the last one)
    resyncs: int = 0  # stalls longer than MAX_LAG_S: the grid re-anchored (a gap in the audio)
    starved: int = 0  # silent frames inside an open speech segment: its audio had not arrived in time
    dropped_speech_s: float = 0.0  # speech refused because max_queued_s of it already waited
    render_ms: float = 0.0  # estimate (EWMA) of one rendered frame's wall time on the lane
    write_ms: float = 0.0  # estimate (EWMA) of one sink write (conversion, encode hand-off)
    first_frame_at: float | None = None  # time.perf_counter() of the first frame written
    started_at: float = 0.0  # time.perf_counter() when the pump started

    @property
    def late(self) -> int:
        """Frames the viewer did not get a picture for in time (skipped), plus stalls."""
        return self.skipped + self.resyncs

    def delivered_fps(self, now: float | None = None) -> float:
        """Images per second the viewer received since the pump started."""
        elapsed = (time.perf_counter() if now is None else now) - self.started_at
        return self.rendered / elapsed if elapsed > 0 else 0.0


class FramePump:
    """Drives one session's renderer into its sink; see the module docstring."""

    def __init__(
        self,
        lane: RenderLane,
        sink: FrameSink,
        *,
        fps: int,
        max_queued_s: float,
        gesture_hook: GestureHook | None = None,
        clock: PumpClock | None = None,
        log_fields: Mapping[str, object] | None = None,
    ) -> None:
        self._lane = lane
        self._log_fields = dict(log_fields or {})
        self._sink = sink
        self._lead_s = float(getattr(sink, "lead_s", LEAD_S))  # the sink's jitter buffer, if it says
        self._frame_s = 1.0 / fps
        self._max_queued_frames = max_queued_s * fps
        self._gesture_hook = gesture_hook
        self._clock = clock or LoopClock()
        self._input_changed = asyncio.Event()
        self._input_closed = False
        self._abandon_queue = False  # the input closed with nobody left to hear what is queued
        self._open_segment: int | None = None  # the speech segment playing, until its last frame
        # Held from taking a frame until it is written: an interrupt waits for the frame in flight,
        # so every frame written after the interrupt was rendered after it (the sink's barrier).
        self._turn = asyncio.Lock()
        self.stats = PumpStats()
        self.progress_at = time.monotonic()  # last step forward (the lease keeper's stall check)

    # ------------------------------------------------------------------ public
    async def run(self, events: AsyncIterator[InputEvent], should_end: ShouldEnd) -> str:
        """Pump frames until the input closes with nothing left to play, or ``should_end`` says why."""
        self.stats.started_at = time.perf_counter()
        consumer = asyncio.create_task(self._consume(events), name="pump-input")
        try:
            return await self._frames(consumer, should_end)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def speak(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Queue speech the farm was asked to say as its own segment (``/v1/agent/{id}/speak``)."""
        renderer = self._lane.renderer
        await self._lane.call(renderer.push_audio, pcm, sample_rate)
        await self._lane.call(renderer.flush)
        self._input_changed.set()

    # ------------------------------------------------------------------ frames
    async def _frames(self, consumer: asyncio.Task[None], should_end: ShouldEnd) -> str:
        renderer, sink = self._lane.renderer, self._sink
        t0 = self._clock.now()
        index = 0
        pending = -1  # frames of queued speech after the last frame taken (-1: not asked yet)
        while True:
            self.progress_at = time.monotonic()
            reason = await should_end()
            if reason is not None:
                return reason
            if consumer.done() and consumer.exception() is not None:
                raise consumer.exception()  # type: ignore[misc]
            if self._abandon_queue or (self._input_closed and pending == 0):
                return PumpEnd.INPUT_CLOSED
            if sink.realtime:
                lead_s = self._lead_s if pending > 0 else min(self._lead_s, IDLE_LEAD_S)
                t0, render = await self._keep_time(t0, index, lead_s)
            else:
                pending = await self._lane.call(renderer.pending_frames)
                if pending == 0:
                    if not self._input_closed:
                        await self._wait_for_input()
                        pending = -1  # stale once input arrived: ask again
                    continue
                render = True
            async with self._turn:
                frame, pending = await self._next(render)
                self._count_starved(frame)
                await self._write(frame)
            index += 1

    def _count_starved(self, frame: AvatarFrame) -> None:
        """A silent frame while a segment is open (begun, neither ended nor interrupted) means the
        segment's next audio was not there in time: the agent's stream fell behind real time. The
        clock does not wait for it (a gap in that speech), and it is counted, so a stretched voice
        can be told apart from a late sender."""
        if frame.speaking:
            self._open_segment = None if frame.segment_end else frame.segment_id
        elif self._open_segment is not None:
            self.stats.starved += 1

    async def _keep_time(self, t0: float, index: int, lead_s: float) -> tuple[float, bool]:
        """Wait until frame ``index`` may be produced; (grid origin, whether to render its image)."""
        due = t0 + index * self._frame_s
        now = self._clock.now()
        if now < due - lead_s:
            await self._clock.sleep(due - lead_s - now)
            now = self._clock.now()
        elif now > due + self._lead_s + MAX_LAG_S:
            self.stats.resyncs += 1
            t0 = now - index * self._frame_s  # this frame is due now: the stall is a gap, not a burst
            due = now
        render = now + self.stats.render_ms / 1000.0 <= due + SLACK_S
        return t0, render

    async def _next(self, render: bool) -> tuple[AvatarFrame, int]:
        """The next frame and the frames of speech still queued after it (one trip to the lane)."""
        began = self._clock.now()
        frame, pending = await self._lane.call(self._take, render)
        if frame.image is not None:
            took_ms = (self._clock.now() - began) * 1000.0
            self.stats.render_ms = _ewma(self.stats.render_ms, took_ms, self.stats.rendered)
            self.stats.rendered += 1
        else:
            self.stats.skipped += 1
        return frame, pending

    def _take(self, render: bool) -> tuple[AvatarFrame, int]:
        """On the lane: take one frame and count what is left."""
        renderer = self._lane.renderer
        return renderer.next_frame(render), renderer.pending_frames()

    async def _write(self, frame: AvatarFrame) -> None:
        began = time.perf_counter()
        await self._sink.write(frame)
        now = time.perf_counter()
        self.stats.write_ms = _ewma(self.stats.write_ms, (now - began) * 1000.0, self.stats.frames)
        if self.stats.first_frame_at is None:
            self.stats.first_frame_at = now
        self.stats.frames += 1

    async def _wait_for_input(self) -> None:
        self._input_changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._input_changed.wait(), _IDLE_POLL_S)

    # ------------------------------------------------------------------ input
    async def _consume(self, events: AsyncIterator[InputEvent]) -> None:
        """Apply input events to the renderer (on its lane) until the input closes."""
        renderer = self._lane.renderer
        async for event in events:
            if isinstance(event, SpeechChunk):
                await self._speech(event)
            elif isinstance(event, SegmentEnd):
                await self._lane.call(renderer.flush)
            elif isinstance(event, ClearBuffer):
                async with self._turn:
                    await self._lane.call(renderer.interrupt)
                    self._open_segment = None
            elif isinstance(event, Gesture):
                await self._gesture(event.action)
            elif isinstance(event, InputClosed):
                self._input_closed = True
                self._abandon_queue = not event.drain
            self._input_changed.set()
            if self._input_closed:
                return
        self._input_closed = True
        self._input_changed.set()

    async def _speech(self, chunk: SpeechChunk) -> None:
        """Queue speech, unless ``max_queued_s`` of it already waits: an agent may push audio faster
        than real time, but not without bound (the excess is dropped and counted)."""
        renderer = self._lane.renderer
        if await self._lane.call(renderer.pending_frames) >= self._max_queued_frames:
            if self.stats.dropped_speech_s == 0.0:
                log.warning("speech dropped: the session's speech queue is full", extra=self._log_fields)
            self.stats.dropped_speech_s += chunk.pcm.size / chunk.channels / chunk.sample_rate
            return
        pcm = chunk.pcm if chunk.channels == 1 else chunk.pcm.reshape(-1, chunk.channels)
        await self._lane.call(renderer.push_audio, pcm, chunk.sample_rate)

    async def _gesture(self, action: str) -> None:
        if self._gesture_hook is not None:
            self._gesture_hook(action)
            return
        try:
            await self._lane.call(self._lane.renderer.trigger, action)
        except UnknownGesture:
            log.warning("unknown gesture ignored", extra={**self._log_fields, "action": action})


def _ewma(current: float, sample: float, count: int) -> float:
    return sample if count == 0 else current + RENDER_EWMA * (sample - current)
