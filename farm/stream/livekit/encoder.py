"""The farm's own video encoder: pictures in, encoded access units out to an ``rtc.EncodedVideoSource``.

The SDK's ``VideoSource`` encodes inside libwebrtc: ~5.3 of ~7.5 ms of worker CPU per Essence frame
at 512² (H.264), and a late subscriber's keyframe request is answered by that encoder when it gets to
it (~240 ms for a second request, traced 2026-12-07; the browser sees no picture until then). Here the
farm encodes with libx264 (``ultrafast``, ``zerolatency``, one thread, constrained baseline) or libvpx
(VP8, realtime) from PyAV, ~2 ms per 512² frame with the RGB→I420 conversion (libyuv, through the
SDK), and publishes the access units pre-encoded. Every picture first asks the source for feedback,
so a keyframe request from a new subscriber is answered by the next picture (≤ 40 ms).

One encoder per session, on its own thread (PyAV releases the GIL while encoding, so sessions encode
in parallel and the event loop never waits for one): ``show`` hands the newest picture over and
returns; a picture still waiting when a newer one arrives is skipped (counted), so a slow encode
drops pictures, never delays the voice. ``capture_frame`` is called only from that thread (the
source's single producer).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
from livekit import rtc

from farm.render.base import FPS

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 1.0  # how long closing waits for the picture being encoded
KEYFRAME_INTERVAL_S = 10.0  # a keyframe at least this often even when nobody asks (loss recovery)

_CODECS: dict[str, tuple[str, dict[str, str], rtc.VideoCodec.ValueType]] = {
    "h264": (
        "libx264",
        {
            "preset": "ultrafast",
            "tune": "zerolatency",  # no lookahead, no B-frames: one access unit out per picture in
            "profile": "baseline",
            "threads": "1",  # parallelism comes from sessions; x264's own threads cost ~60 % more CPU
            "forced-idr": "1",  # a requested keyframe is an IDR a new decoder can start from
        },
        rtc.VideoCodec.H264,
    ),
    "vp8": (
        "libvpx",
        {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0", "threads": "1"},
        rtc.VideoCodec.VP8,
    ),
}


@dataclass
class EncoderStats:
    """What one session's encoder did (observability, tests, ``farm bench``)."""

    encoded: int = 0  # access units handed to the source
    keyframes: int = 0
    keyframe_requests: int = 0  # pictures encoded as keyframes because the source asked
    skipped: int = 0  # pictures replaced by a newer one before the encoder got to them
    rejected: int = 0  # access units the native source did not accept
    failed: int = 0  # pictures whose encode raised (logged once)
    encode_ms_total: float = 0.0
    target_bitrate_bps: int = 0  # the last rate WebRTC asked for (recorded; the encoder keeps its own)

    @property
    def encode_ms_mean(self) -> float:
        return self.encode_ms_total / self.encoded if self.encoded else 0.0


class EncodedSink(Protocol):
    """Where access units go: ``rtc.EncodedVideoSource`` (a recording one in unit tests)."""

    def take_feedback(self) -> rtc.EncodedVideoSourceFeedback: ...

    def capture_frame(self, frame: rtc.EncodedVideoFrame) -> bool: ...

    async def aclose(self) -> None: ...


def encodable(frame_size: tuple[int, int]) -> bool:
    """4:2:0 needs even sides; the SDK's encoder takes the others."""
    width, height = frame_size
    return width > 0 and height > 0 and width % 2 == 0 and height % 2 == 0


class FarmVideoEncoder:
    """Encodes one session's pictures into an ``rtc.EncodedVideoSource`` on a thread of its own."""

    def __init__(
        self,
        frame_size: tuple[int, int],
        codec: str,
        *,
        max_bitrate: int,
        session_id: str = "",
        sink: EncodedSink | None = None,
    ) -> None:
        if not encodable(frame_size):
            raise ValueError(
                f"the farm's encoder needs even frame sides, not {frame_size[0]}x{frame_size[1]}"
            )
        self.width, self.height = frame_size
        self.codec = codec
        self._codec_name, self._options, self._rtc_codec = _CODECS[codec]
        self._max_bitrate = max_bitrate
        self._session_id = session_id
        self.sink: EncodedSink = sink if sink is not None else rtc.EncodedVideoSource(self.width, self.height)
        self.stats = EncoderStats()
        self._context = self._open()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="farm-encode")
        self._lock = threading.Lock()
        self._pending: tuple[rtc.VideoFrame, int] | None = None
        self._job: Future[None] | None = None
        self._draining = False  # a drain job is queued or running (under the lock)
        self._force_key = False
        self._last_key_us = 0
        self._pts = 0
        self._closed = False

    def _open(self) -> av.video.codeccontext.VideoCodecContext:
        context = av.CodecContext.create(self._codec_name, "w")
        assert isinstance(context, av.video.codeccontext.VideoCodecContext)
        context.width, context.height = self.width, self.height
        context.pix_fmt = "yuv420p"
        context.time_base = Fraction(1, 1_000_000)  # pts are the capture times in µs
        context.framerate = Fraction(FPS, 1)
        context.bit_rate = self._max_bitrate
        context.options = dict(self._options)
        context.open()
        return context

    def source(self) -> rtc.EncodedVideoSource:
        """The source a ``LocalVideoTrack`` is created on."""
        if not isinstance(self.sink, rtc.EncodedVideoSource):
            raise TypeError("this encoder writes to a recording sink, not to LiveKit")
        return self.sink

    @property
    def rtc_codec(self) -> rtc.VideoCodec.ValueType:
        return self._rtc_codec

    def show(self, picture: rtc.VideoFrame, timestamp_us: int | None = None) -> None:
        """Encode ``picture`` next (newest wins) and return at once."""
        if self._closed:
            return
        at = time.monotonic_ns() // 1000 if timestamp_us is None else timestamp_us
        with self._lock:
            if self._pending is not None:
                self.stats.skipped += 1
            self._pending = (picture, at)
            if not self._draining:  # decided under the lock: a drain that is ending has said so
                self._draining = True
                self._job = self._executor.submit(self._drain)

    def request_keyframe(self) -> None:
        """The next picture is encoded as a keyframe (a republished track starts from one)."""
        self._force_key = True

    def _drain(self) -> None:
        while True:
            with self._lock:
                pending, self._pending = self._pending, None
                if pending is None or self._closed:
                    self._draining = False
                    return
            try:
                self._encode(*pending)
            except Exception:  # one bad picture must not end the session's video
                self.stats.failed += 1
                if self.stats.failed == 1:
                    log.exception("encoding a picture failed", extra={"session_id": self._session_id})

    def _encode(self, picture: rtc.VideoFrame, at_us: int) -> None:
        began = time.perf_counter()
        feedback = self.sink.take_feedback()
        if feedback.rate_control is not None:
            self.stats.target_bitrate_bps = feedback.rate_control.target_bitrate_bps
        key = self._force_key or feedback.keyframe_requested
        if feedback.keyframe_requested:
            self.stats.keyframe_requests += 1
        if at_us - self._last_key_us >= KEYFRAME_INTERVAL_S * 1_000_000:
            key = True
        self._force_key = False
        frame = self.i420(picture)
        frame.pts = max(at_us, self._pts + 1)  # strictly increasing for the encoder
        self._pts = frame.pts
        if key:
            frame.pict_type = av.video.frame.PictureType.I
        packets = self._context.encode(frame)
        if not packets:  # an encoder that buffers (not with these options) emits nothing for this picture
            return
        data = b"".join(bytes(packet) for packet in packets)
        keyframe = any(packet.is_keyframe for packet in packets)
        if keyframe:
            self._last_key_us = at_us
            self.stats.keyframes += 1
        accepted = self.sink.capture_frame(
            rtc.EncodedVideoFrame(
                data=data,
                width=self.width,
                height=self.height,
                codec=self._rtc_codec,
                frame_type=rtc.EncodedFrameType.ENCODED_FRAME_KEY
                if keyframe
                else rtc.EncodedFrameType.ENCODED_FRAME_DELTA,
                timestamp_us=at_us,
            )
        )
        self.stats.encoded += 1
        self.stats.rejected += 0 if accepted else 1
        self.stats.encode_ms_total += (time.perf_counter() - began) * 1000.0

    def i420(self, picture: rtc.VideoFrame) -> av.VideoFrame:
        """RGB→I420 by libyuv (the SDK's converter, ~0.3 ms at 512²; swscale takes ~1 ms)."""
        i420 = (
            picture if picture.type == rtc.VideoBufferType.I420 else picture.convert(rtc.VideoBufferType.I420)
        )
        planes = np.frombuffer(i420.data, dtype=np.uint8).reshape(self.height * 3 // 2, self.width)
        return av.VideoFrame.from_ndarray(planes, format="yuv420p")

    async def aclose(self) -> None:
        """Stop encoding (a picture being encoded finishes) and release the source. Idempotent."""
        if self._closed:
            return
        self._closed = True
        job = self._job
        self._executor.shutdown(wait=False)  # a drain not yet started finds the encoder closed and returns
        if job is not None:  # asyncio.wait neither raises nor cancels (a cancelled job must not cancel us)
            await asyncio.wait([asyncio.wrap_future(job)], timeout=CLOSE_WAIT_S)
        await self.sink.aclose()
