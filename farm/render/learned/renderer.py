"""LearnedRenderer: one session of the learned Expression model, streaming.

Audio goes into a ``SpeechTimeline``; as soon as a 5-frame chunk and its 85 ms of look-ahead are
queued (or the segment is flushed) the chunk's motion job is submitted to the engine's motion
batcher, at most ``AHEAD_CHUNKS`` per session in flight, so motion is computed while earlier frames
play. Each ``next_frame`` takes one frame: a speech frame once its chunk's motion is ready (it waits
for that computation, never for more audio), else an idle frame whose motion comes from silent
chunks the renderer keeps planned two chunks ahead, so a silent face keeps moving the way the model
moves it on silence (a frame waits for motion only if that planning fell behind: compute, not
input). A new chunk starts from the last frame shown (``blend_into``), so switching between speech
and idle, or an interrupt, never jumps.

``interrupt`` drops queued audio and unplayed speech chunks (their jobs are cancelled if they have
not started): the very next frame is idle. Pictures come from the engine's frame batcher, one
``FrameJob`` per rendered frame; ``next_frame(render=False)`` advances the same way without one.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from farm.kernel.errors import BatcherClosed, InvalidAudio, UnknownGesture
from farm.render.base import FPS, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, AvatarFrame
from farm.render.batching import BatchClient
from farm.render.learned.motion import GESTURE_SET, GESTURES, Gesture, blend_into, driving_keypoints
from farm.render.learned.pipeline import DeviceAvatar, FrameJob, MotionHistory, MotionJob
from farm.render.learned.stream import CHUNK_FRAMES, SpeechChunk, SpeechTimeline, to_float_mono

AHEAD_CHUNKS = 3  # speech chunks per session submitted and not yet fully played
IDLE_AHEAD_CHUNKS = 2  # silent chunks kept planned while idle (10 frames, 400 ms)
SILENT_FRAME = np.zeros(SAMPLES_PER_FRAME, np.int16)


@dataclass(slots=True)
class _Chunk:
    speech: SpeechChunk | None  # None: an idle chunk
    future: Future[np.ndarray] | None = None
    motion: np.ndarray | None = None  # (5, 265), blended, once the chunk starts playing
    played: int = 0

    @property
    def length(self) -> int:
        return len(self.speech.frames) if self.speech is not None else CHUNK_FRAMES


class LearnedRenderer:
    """Streaming Renderer over the engine's two batchers (see ``farm.render.base.Renderer``)."""

    def __init__(
        self,
        avatar: DeviceAvatar,
        frames: BatchClient[FrameJob, np.ndarray],
        motion: BatchClient[MotionJob, np.ndarray],
        history: MotionHistory,
        session_id: str,
        *,
        wait_s: float = 30.0,
    ) -> None:
        self._avatar = avatar
        self._frames = frames
        self._motion = motion
        self._history = history
        self.session_id = session_id
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._timeline = SpeechTimeline()
        self._speech: deque[_Chunk] = deque()
        self._idle: deque[_Chunk] = deque()
        self._last: np.ndarray | None = None  # motion of the last frame shown
        self._gesture: tuple[Gesture, int] | None = None
        self._resampler: object | None = None
        self._rate = SAMPLE_RATE_HZ
        self._index = 0
        self._closed = False
        with self._lock:
            self._plan_idle()  # the first frames move too

    @property
    def gestures(self) -> tuple[str, ...]:
        return GESTURES

    @property
    def frame_size(self) -> tuple[int, int]:
        size = self._avatar.prepared.canvas.size
        return (size, size)

    # ------------------------------------------------------------------ audio in
    def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise InvalidAudio(f"sample rate must be positive, got {sample_rate}")
        samples = to_float_mono(pcm)
        with self._lock:
            if sample_rate != SAMPLE_RATE_HZ or self._resampler is not None:
                samples = self._resample(samples, sample_rate)
            self._timeline.push(samples)
            self._take_chunks()

    def _resample(self, samples: np.ndarray, rate: int) -> np.ndarray:
        from farm.render.audio import Resampler  # scipy: only when a caller sends another rate

        if self._resampler is None or self._rate != rate:
            self._finish_resampler()
            self._resampler, self._rate = Resampler(rate), rate
        assert isinstance(self._resampler, Resampler)
        return np.clip(self._resampler.push(samples), -1.0, 1.0)

    def _finish_resampler(self) -> None:
        if self._resampler is None:
            return
        from farm.render.audio import Resampler

        assert isinstance(self._resampler, Resampler)
        self._timeline.push(np.clip(self._resampler.finish(), -1.0, 1.0))
        self._resampler = None

    def flush(self) -> None:
        with self._lock:
            self._finish_resampler()
            self._timeline.flush()
            self._take_chunks()

    def interrupt(self) -> None:
        with self._lock:
            self._resampler = None
            self._timeline.clear()
            for chunk in self._speech:
                if chunk.future is not None:
                    chunk.future.cancel()
            self._speech.clear()
            self._plan_idle()

    def _take_chunks(self) -> None:
        """Move every chunk that can start into the speech queue and submit what fits ahead."""
        added = False
        while (chunk := self._timeline.take()) is not None:
            self._speech.append(_Chunk(chunk))
            added = True
        if added:
            for idle in self._idle:  # speech takes over: planned silence is not needed
                if idle.future is not None:
                    idle.future.cancel()
            self._idle.clear()
            self._submit_speech()

    def _submit_speech(self) -> None:
        in_flight = sum(1 for c in self._speech if c.future is not None)
        for chunk in self._speech:
            if in_flight >= AHEAD_CHUNKS:
                return
            if chunk.future is None:
                assert chunk.speech is not None
                chunk.future = self._motion.submit(MotionJob(self._history, chunk.speech.window))
                in_flight += 1

    def _plan_idle(self) -> None:
        while not self._speech and len(self._idle) < IDLE_AHEAD_CHUNKS:
            self._idle.append(_Chunk(None, self._motion.submit(MotionJob(self._history, None))))

    # ------------------------------------------------------------------ gestures
    def trigger(self, gesture: str) -> None:
        if gesture not in GESTURE_SET:
            raise UnknownGesture(
                f"unknown gesture {gesture!r}; this model has {list(GESTURES)}", gesture=gesture
            )
        with self._lock:
            self._gesture = (GESTURE_SET[gesture], self._index)

    def _gesture_at(self, index: int) -> tuple[str | None, np.ndarray | None]:
        if self._gesture is None:
            return None, None
        gesture, start = self._gesture
        progress = (index - start) / max(1.0, gesture.duration_s * FPS)
        if progress >= 1.0:
            self._gesture = None
            return None, None
        return gesture.name, gesture.offset(progress)

    # ------------------------------------------------------------------ frames out
    def pending_frames(self) -> int:
        with self._lock:
            return sum(c.length - c.played for c in self._speech)

    def _chunk_motion(self, chunk: _Chunk) -> np.ndarray:
        if chunk.motion is None:
            assert chunk.future is not None
            raw = chunk.future.result(timeout=self._wait_s)  # compute, never input: bounded
            chunk.motion = raw if self._last is None else blend_into(self._last, raw)
        return chunk.motion

    def _advance(self) -> tuple[np.ndarray, np.ndarray, SpeechChunk | None, bool]:
        """(motion, audio, speech chunk or None, segment end) of the next frame (the lock is held)."""
        if self._speech:
            head = self._speech[0]
            if head.future is None:
                self._submit_speech()
            motion = self._chunk_motion(head)[head.played]
            assert head.speech is not None
            audio = head.speech.frames[head.played]
            head.played += 1
            end = head.speech.ends_segment and head.played == head.length
            if head.played == head.length:
                self._speech.popleft()
                self._submit_speech()
                self._plan_idle()
            return motion, audio, head.speech, end
        self._plan_idle()
        idle = self._idle[0]  # planned ahead, so normally computed already
        motion = self._chunk_motion(idle)[idle.played]
        idle.played += 1
        if idle.played == idle.length:
            self._idle.popleft()
            self._plan_idle()
        return motion, np.zeros(SAMPLES_PER_FRAME, np.float32), None, False

    def next_frame(self, render: bool = True) -> AvatarFrame:
        with self._lock:
            if self._closed:
                raise BatcherClosed("the renderer is closed", session_id=self.session_id)
            motion, audio, speech, end = self._advance()
            index = self._index
            self._index += 1
            gesture, offset = self._gesture_at(index)
            self._last = motion
            first = self._history.first  # set by the first motion job, which this frame waited for
            assert first is not None
            x_d, opening = driving_keypoints(self._avatar.prepared.source, motion, first, offset)
        image: np.ndarray | None = None
        if render:
            image = self._frames.submit(FrameJob(self._avatar, x_d)).result(timeout=self._wait_s)
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
        return AvatarFrame(
            index=index,
            image=image,
            audio=pcm,
            speaking=speech is not None,
            segment_id=speech.segment_id if speech is not None else None,
            segment_end=end,
            gesture=gesture,
            mouth_open=opening,
        )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._timeline.clear()
            self._speech.clear()
            self._idle.clear()
        self._frames.leave()
        self._motion.leave()
