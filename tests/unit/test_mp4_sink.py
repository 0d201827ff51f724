"""Mp4Sink writes an MP4 that PyAV decodes back: every frame, 25 fps, and an AAC audio track."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from farm.render.base import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, AvatarFrame
from farm.stream.mp4 import Mp4Sink

pytestmark = pytest.mark.unit


def frame(i: int, size: int = 64) -> AvatarFrame:
    t = np.arange(SAMPLES_PER_FRAME) + i * SAMPLES_PER_FRAME
    audio = (np.sin(2 * np.pi * 220 * t / SAMPLE_RATE_HZ) * 8000).astype(np.int16)
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = (i * 5) % 256
    return AvatarFrame(i, image, audio, True, 0, False, None, 0.5)


async def test_a_recording_decodes_to_every_frame_with_audio(tmp_path: Path) -> None:
    path = tmp_path / "rec" / "s.mp4"
    sink = Mp4Sink(path)
    assert not sink.realtime
    await sink.start()
    for i in range(50):
        await sink.write(frame(i))
    await sink.aclose()
    await sink.aclose()  # idempotent

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert video.average_rate == 25
        assert (video.width, video.height) == (64, 64)
        assert container.streams.audio[0].codec_context.name == "aac"
        decoded_frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
        rate = container.streams.audio[0].rate
    assert decoded_frames == 50
    assert rate == SAMPLE_RATE_HZ
    assert abs(samples / rate - 2.0) < 0.1  # AAC adds at most a frame of priming


async def test_nothing_is_left_behind_when_no_frame_was_written(tmp_path: Path) -> None:
    sink = Mp4Sink(tmp_path / "empty.mp4")
    await sink.start()
    await sink.aclose()
    assert list(tmp_path.iterdir()) == []


async def test_the_file_appears_only_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "s.mp4"
    sink = Mp4Sink(path)
    await sink.start()
    await sink.write(frame(0))
    assert not path.exists()
    await sink.aclose()
    assert path.exists()


async def test_odd_frame_sizes_are_cropped_to_even(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    sink = Mp4Sink(path)
    await sink.start()
    await sink.write(frame(0, size=65))
    await sink.aclose()
    with av.open(str(path)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (64, 64)
