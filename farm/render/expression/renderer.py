"""ExpressionRenderer: the per-session streaming Renderer of the Expression model.

Per frame it takes 40 ms from its SpeechQueue, reads the frame's visemes from the viseme model
(fed the segment's audio in order with its look-ahead, then coarticulated:
``farm.render.speech.mouth``) and maps them to the network's mouth row (opening, width, rounding,
press), steps its MotionState (blinks, sway, gesture) and submits one ``FrameRequest`` to the
engine's shared FrameBatcher; ``next_frame`` then waits for that request's image. An unflushed
segment holds a frame back (``pending_frames``) until the model's look-ahead audio has arrived.
``mouth="loudness"`` selects the mapping before visemes (log-mel loudness and formant bands over a
window of two frames either side), which ``farm bench lipsync`` measures as the baseline.
Torch never appears here: the request carries the engine's
device-side avatar tensors as an opaque handle.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from farm.kernel.errors import BatcherClosed, InvalidAudio
from farm.render.audio import Resampler, log_mel, to_mono_16k
from farm.render.base import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, AvatarFrame
from farm.render.batching import BatchClient
from farm.render.expression.motion import GESTURES, MotionState, loudness_mouth, mouth_controls
from farm.render.expression.speech import SpeechFrame, SpeechQueue
from farm.render.speech.model import VisemeModel, load_model
from farm.render.speech.mouth import VisemeTrack

HISTORY_FRAMES = 2  # the loudness baseline's log-mel window: two frames either side
LOOKAHEAD_FRAMES = 2
MouthDriver = Literal["visemes", "loudness"]


@dataclass(frozen=True, slots=True)
class FrameRequest:
    """One frame to render: which avatar (engine handle) and this frame's audio and motion inputs."""

    avatar: object  # engine-side handle of the prepared avatar (device tensors)
    mouth: np.ndarray  # (N_MOUTH,) float32: opening, width, rounding, press
    controls: np.ndarray  # (N_CONTROLS,) float32


class ExpressionRenderer:
    """Streaming Renderer over the shared batcher (see ``farm.render.base.Renderer``)."""

    def __init__(
        self,
        avatar: object,
        client: BatchClient[FrameRequest, np.ndarray],
        session_id: str,
        size: int,
        *,
        frame_wait_s: float = 10.0,
        mouth: MouthDriver = "visemes",
        model: VisemeModel | None = None,
    ) -> None:
        self._avatar = avatar
        self._client = client
        self.session_id = session_id
        self._size = size
        self._frame_wait_s = frame_wait_s
        self._lock = threading.Lock()
        self._speech = SpeechQueue()
        self._resampler: Resampler | None = None
        self._motion = MotionState(seed=zlib.crc32(session_id.encode()))
        self._history = np.zeros(HISTORY_FRAMES * SAMPLES_PER_FRAME, np.float32)
        self._track = VisemeTrack(model or load_model()) if mouth == "visemes" else None
        self._hold = self._track.lookahead_samples if self._track else LOOKAHEAD_FRAMES * SAMPLES_PER_FRAME
        self._index = 0
        self._closed = False

    @property
    def gestures(self) -> tuple[str, ...]:
        return GESTURES

    @property
    def frame_size(self) -> tuple[int, int]:
        return (self._size, self._size)

    @property
    def lookahead_samples(self) -> int:
        """Audio (16 kHz samples) after a frame that an unflushed segment waits for."""
        return self._hold

    def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise InvalidAudio(f"sample rate must be positive, got {sample_rate}")
        # Integer → float and channels → mono only; resampling is streamed below (no chunk-edge clicks).
        samples = to_mono_16k(pcm, SAMPLE_RATE_HZ)
        with self._lock:
            if sample_rate != SAMPLE_RATE_HZ or self._resampler is not None:
                if self._resampler is None or self._resampler.rate_in != sample_rate:
                    self._finish_resampler()
                    self._resampler = Resampler(sample_rate)
                samples = np.clip(self._resampler.push(samples), -1.0, 1.0)
            self._speech.push(samples)

    def flush(self) -> None:
        with self._lock:
            self._finish_resampler()
            self._speech.flush()

    def interrupt(self) -> None:
        with self._lock:
            self._resampler = None
            self._speech.clear()
            if self._track is not None:
                self._track.reset()  # the stream forgets; the mouth relaxes over the next idle frames

    def _finish_resampler(self) -> None:
        """Push the resampler's tail (the lock is held)."""
        if self._resampler is not None:
            self._speech.push(np.clip(self._resampler.finish(), -1.0, 1.0))
            self._resampler = None

    def trigger(self, gesture: str) -> None:
        with self._lock:
            self._motion.trigger(gesture)

    def pending_frames(self) -> int:
        with self._lock:
            # A frame's mouth reads the look-ahead after it: a file render waits for it (or the
            # flush), so its frames do not depend on how the clip was chunked.
            return self._speech.pending_frames(hold=self._hold)

    def next_frame(self, render: bool = True) -> AvatarFrame:
        with self._lock:
            if self._closed:
                raise BatcherClosed("the renderer is closed", session_id=self.session_id)
            speech = self._speech.take_frame()
            mouth = self._mouth(speech)
            opening = float(mouth[0])
            controls, gesture = self._motion.step(opening)
            index = self._index
            self._index += 1
        image: np.ndarray | None = None
        if render:  # a skipped frame never enters a batch (its peers' batches do not wait for it)
            future = self._client.submit(FrameRequest(self._avatar, mouth, controls))
            image = future.result(timeout=self._frame_wait_s)
        audio = np.clip(np.round(speech.samples * 32767.0), -32768, 32767).astype(np.int16)
        return AvatarFrame(
            index=index,
            image=image,
            audio=audio,
            speaking=speech.speaking,
            segment_id=speech.segment_id,
            segment_end=speech.segment_end,
            gesture=gesture,
            mouth_open=opening,
        )

    def _mouth(self, speech: SpeechFrame) -> np.ndarray:
        """The frame's mouth row (the lock is held); steps the mouth state even for a skipped image."""
        if self._track is not None:
            ahead, complete = self._speech.ahead(speech.segment_id, self._hold)
            window = np.concatenate([speech.samples[: speech.real], ahead])
            return mouth_controls(self._track.step(speech.segment_id, speech.offset, window, complete))
        ahead = self._speech.lookahead(LOOKAHEAD_FRAMES * SAMPLES_PER_FRAME)
        window = np.zeros((HISTORY_FRAMES + 1 + LOOKAHEAD_FRAMES) * SAMPLES_PER_FRAME, np.float32)
        window[: self._history.shape[0]] = self._history
        window[self._history.shape[0] : self._history.shape[0] + SAMPLES_PER_FRAME] = speech.samples
        window[(HISTORY_FRAMES + 1) * SAMPLES_PER_FRAME :][: ahead.shape[0]] = ahead
        self._history = window[SAMPLES_PER_FRAME : (HISTORY_FRAMES + 1) * SAMPLES_PER_FRAME].copy()
        return loudness_mouth(log_mel(window))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._resampler = None
            self._speech.clear()
        self._client.leave()
