"""The farm's video encoder: real libx264/libvpx through PyAV, access units decoded back with PyAV.

The sink records what LiveKit's ``EncodedVideoSource`` would get and plays the part of its feedback
(a subscriber's keyframe request); the e2e layer publishes the same encoder into a real room.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import av
import numpy as np
import pytest
from livekit import rtc

from farm.stream.livekit.encoder import FarmVideoEncoder, encodable

pytestmark = pytest.mark.unit

SIZE = (128, 96)


@dataclass
class RecordingSink:
    """What the encoder handed over, and the feedback it will read next."""

    frames: list[rtc.EncodedVideoFrame] = field(default_factory=list)
    keyframe_asked: bool = False
    closed: bool = False

    def take_feedback(self) -> rtc.EncodedVideoSourceFeedback:
        asked, self.keyframe_asked = self.keyframe_asked, False
        return rtc.EncodedVideoSourceFeedback(keyframe_requested=asked, rate_control=None)

    def capture_frame(self, frame: rtc.EncodedVideoFrame) -> bool:
        self.frames.append(frame)
        return True

    async def aclose(self) -> None:
        self.closed = True


def picture(i: int) -> tuple[np.ndarray, rtc.VideoFrame]:
    """A smooth face-sized gradient with a moving block (a mouth that opens)."""
    height, width = SIZE[1], SIZE[0]
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 2, y * 2, (x + y)], axis=-1).astype(np.uint8)
    image[40 : 40 + (i % 20), 50:80] = 230
    frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.RGB24, np.ascontiguousarray(image).tobytes())
    return image, frame


async def encode_all(encoder: FarmVideoEncoder, n: int, *, ask_key_at: int | None = None) -> None:
    """Show ``n`` pictures one at a time (each encoded before the next is shown)."""
    sink = encoder.sink
    assert isinstance(sink, RecordingSink)
    for i in range(n):
        if i == ask_key_at:
            sink.keyframe_asked = True
        encoder.show(picture(i)[1], timestamp_us=1_000_000 + i * 40_000)
        while len(sink.frames) + encoder.stats.skipped < i + 1:
            await asyncio.sleep(0.001)


def decode(codec: str, frames: list[rtc.EncodedVideoFrame]) -> list[np.ndarray]:
    decoder = av.CodecContext.create("h264" if codec == "h264" else "vp8", "r")
    images: list[np.ndarray] = []
    for frame in frames:
        for decoded in decoder.decode(av.Packet(frame.data)):
            images.append(decoded.to_ndarray(format="rgb24"))
    return images


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("codec", ["h264", "vp8"])
async def test_every_picture_becomes_one_access_unit_that_decodes_to_it(codec: str) -> None:
    sink = RecordingSink()
    encoder = FarmVideoEncoder(SIZE, codec, max_bitrate=2_000_000, sink=sink)
    await encode_all(encoder, 10)
    assert len(sink.frames) == 10 and encoder.stats.encoded == 10 and encoder.stats.skipped == 0
    assert sink.frames[0].frame_type == rtc.EncodedFrameType.ENCODED_FRAME_KEY
    assert all(f.frame_type == rtc.EncodedFrameType.ENCODED_FRAME_DELTA for f in sink.frames[1:])
    assert [f.timestamp_us for f in sink.frames] == [1_000_000 + i * 40_000 for i in range(10)]
    assert all((f.width, f.height) == SIZE for f in sink.frames)
    images = decode(codec, sink.frames)
    assert len(images) == 10
    assert min(psnr(images[i], picture(i)[0]) for i in range(10)) > 30.0
    await encoder.aclose()
    assert sink.closed


async def test_a_requested_keyframe_is_the_next_picture_and_a_new_decoder_starts_from_it() -> None:
    """A late subscriber's keyframe request (the source's feedback) is answered by the very next
    picture, and a decoder that sees nothing before it (the late subscriber) decodes from there."""
    sink = RecordingSink()
    encoder = FarmVideoEncoder(SIZE, "h264", max_bitrate=2_000_000, sink=sink)
    await encode_all(encoder, 12, ask_key_at=7)
    kinds = [f.frame_type == rtc.EncodedFrameType.ENCODED_FRAME_KEY for f in sink.frames]
    assert [i for i, key in enumerate(kinds) if key] == [0, 7]
    assert encoder.stats.keyframe_requests == 1 and encoder.stats.keyframes == 2
    late = decode("h264", sink.frames[7:])
    assert len(late) == 5 and psnr(late[0], picture(7)[0]) > 30.0
    await encoder.aclose()


async def test_a_republished_track_starts_from_a_keyframe() -> None:
    sink = RecordingSink()
    encoder = FarmVideoEncoder(SIZE, "h264", max_bitrate=2_000_000, sink=sink)
    await encode_all(encoder, 3)
    encoder.request_keyframe()
    encoder.show(picture(3)[1], timestamp_us=2_000_000)
    while len(sink.frames) < 4:
        await asyncio.sleep(0.001)
    assert sink.frames[3].frame_type == rtc.EncodedFrameType.ENCODED_FRAME_KEY
    await encoder.aclose()


async def test_a_slow_encode_skips_to_the_newest_picture_and_never_blocks_the_caller() -> None:
    """While one picture is being encoded, newer ones replace each other: the voice's clock (the
    caller) never waits, and only the newest waiting picture is encoded next."""
    sink = RecordingSink()
    encoder = FarmVideoEncoder(SIZE, "h264", max_bitrate=2_000_000, sink=sink)
    gate = threading.Event()
    real_encode = encoder._encode

    def held(frame: rtc.VideoFrame, at_us: int) -> None:
        gate.wait(5)
        real_encode(frame, at_us)

    encoder._encode = held  # type: ignore[method-assign]
    for i in range(6):  # the first is taken by the encoder thread and held; 1-5 wait in turn
        encoder.show(picture(i)[1], timestamp_us=1_000_000 + i * 40_000)
        await asyncio.sleep(0.01)
    gate.set()
    while len(sink.frames) < 2:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)
    assert [f.timestamp_us for f in sink.frames] == [1_000_000, 1_200_000]
    assert encoder.stats.skipped == 4
    await encoder.aclose()


async def test_a_picture_that_fails_to_encode_is_counted_and_the_next_one_is_encoded() -> None:
    sink = RecordingSink()
    encoder = FarmVideoEncoder(SIZE, "h264", max_bitrate=2_000_000, sink=sink)
    wrong = rtc.VideoFrame(64, 64, rtc.VideoBufferType.RGB24, bytes(64 * 64 * 3))  # not the track's size
    encoder.show(wrong, timestamp_us=1_000_000)
    while encoder.stats.failed == 0:
        await asyncio.sleep(0.001)
    encoder.show(picture(1)[1], timestamp_us=1_040_000)
    while not sink.frames:
        await asyncio.sleep(0.001)
    assert sink.frames[0].frame_type == rtc.EncodedFrameType.ENCODED_FRAME_KEY
    await encoder.aclose()


def test_odd_frame_sides_are_left_to_the_sdk() -> None:
    assert encodable((512, 512)) and encodable((384, 512))
    assert not encodable((511, 512)) and not encodable((512, 0))
    with pytest.raises(ValueError, match="even frame sides"):
        FarmVideoEncoder((511, 512), "h264", max_bitrate=2_000_000, sink=RecordingSink())


async def test_closing_while_a_picture_waits_returns_and_encodes_nothing_more() -> None:
    """Closing while the encoder thread is busy and a picture's job waits behind it: the close never
    raises (a job cancelled by the executor's shutdown used to cancel the room's teardown with it,
    seen as a CancelledError in the e2e layer) and nothing is encoded after it."""
    sink = RecordingSink()
    encoder = FarmVideoEncoder(SIZE, "h264", max_bitrate=2_000_000, sink=sink)
    gate = threading.Event()
    encoder._executor.submit(gate.wait, 5)  # the encoder's thread is busy
    encoder.show(picture(0)[1], timestamp_us=1_000_000)  # its job waits in the queue
    closing = asyncio.create_task(encoder.aclose())
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(closing, 5)
    assert sink.closed and sink.frames == []
    encoder.show(picture(1)[1])  # after close: ignored
    await asyncio.sleep(0.05)
    assert sink.frames == []
