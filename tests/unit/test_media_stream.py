"""Streaming decode: a clip is read in bounded chunks that add up to exactly what a whole-clip decode
gives, limits are checked before (size, sample rate) and during (length) decoding, and a FileInput
stops at the next chunk once closed. A renderer fed the chunks draws the same frames as from one push."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import av
import numpy as np
import pytest

from farm.infra.media import AudioLimits, PcmReader, measure_audio
from farm.kernel.errors import PayloadTooLarge
from farm.render.essence import LoadedAvatar
from farm.render.essence.renderer import EssenceRenderer
from farm.stream.base import InputClosed, SegmentEnd, SpeechChunk
from farm.stream.file_input import FileInput
from tests.support.helpers import flac_bytes

pytestmark = pytest.mark.unit


def flac(seconds: float, rate: int, channels: int = 1) -> bytes:
    return flac_bytes(seconds, rate, channels, noise=0.01)


def whole_clip_decode(data: bytes) -> np.ndarray:
    """The decode every clip went through before streaming: all frames, one array."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.codec_context.sample_rate)
        frames = container.decode(stream)
        parts = [out.to_ndarray().reshape(-1) for f in frames for out in resampler.resample(f)]
        parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(parts)


@pytest.mark.parametrize(("rate", "channels"), [(8_000, 1), (44_100, 2), (192_000, 1)])
def test_chunks_are_bounded_and_add_up_to_the_whole_clip_decode(rate: int, channels: int) -> None:
    data = flac(2.3, rate, channels)
    with PcmReader(data, AudioLimits(max_s=10), chunk_s=0.25) as reader:
        chunks = list(reader)
    assert all(c.size == reader.chunk_samples == int(0.25 * rate) for c in chunks[:-1])
    assert 0 < chunks[-1].size <= reader.chunk_samples
    assert np.array_equal(np.concatenate(chunks), whole_clip_decode(data))


def test_chunks_smaller_than_a_codec_frame_add_up_too() -> None:
    data = flac(0.3, 8_000)
    with PcmReader(data, AudioLimits(max_s=10), chunk_s=0.001) as reader:
        chunks = list(reader)
    assert {c.size for c in chunks[:-1]} == {8}
    assert np.array_equal(np.concatenate(chunks), whole_clip_decode(data))


def test_a_sample_rate_over_the_limit_is_refused_before_decoding() -> None:
    with pytest.raises(PayloadTooLarge, match="96000 Hz, over the 48000 Hz limit"):
        PcmReader(flac(0.2, 96_000), AudioLimits(max_s=10, max_sample_rate_hz=48_000))


def test_an_upload_over_the_size_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "clip.flac"
    path.write_bytes(flac(1.0, 48_000))
    with pytest.raises(PayloadTooLarge, match="MB limit"):
        PcmReader(path, AudioLimits(max_s=10, max_mb=path.stat().st_size / 2 / 1024 / 1024))


def test_a_long_clip_fails_once_its_decoded_samples_pass_the_limit() -> None:
    reader = PcmReader(flac(3.0, 16_000), AudioLimits(max_s=1.0), chunk_s=0.1)
    read = 0
    with pytest.raises(PayloadTooLarge, match="longer than the 1 s limit"):
        while (chunk := reader.read()) is not None:
            read += chunk.size
    assert read <= 16_000


def test_measuring_a_clip_gives_its_decoded_length() -> None:
    data = flac(1.7, 44_100, channels=2)
    assert measure_audio(data, AudioLimits(max_s=10)) == whole_clip_decode(data).size / 44_100


async def test_a_file_input_yields_bounded_chunks_then_ends_the_segment(tmp_path: Path) -> None:
    path = tmp_path / "clip.flac"
    path.write_bytes(flac(1.3, 48_000))
    source = FileInput(path, max_s=10, max_sample_rate_hz=192_000)
    await source.start()
    events = [e async for e in source.events()]
    await source.aclose()
    chunks = [e.pcm for e in events if isinstance(e, SpeechChunk)]
    assert max(c.size for c in chunks) == 24_000  # half a second at 48 kHz, never the whole clip
    assert np.array_equal(np.concatenate(chunks), whole_clip_decode(path.read_bytes()))
    assert [type(e) for e in events[-2:]] == [SegmentEnd, InputClosed]


async def test_closing_a_file_input_stops_it_at_the_next_chunk(tmp_path: Path) -> None:
    path = tmp_path / "clip.flac"
    path.write_bytes(flac(5.0, 16_000))
    source = FileInput(path, max_s=10, chunk_s=0.1)
    await source.start()
    seen = []
    async for event in source.events():
        seen.append(event)
        if len(seen) == 3:
            await source.aclose()
    assert len(seen) == 3 and all(isinstance(e, SpeechChunk) for e in seen)


async def test_an_open_file_input_can_close_while_a_chunk_decodes(tmp_path: Path) -> None:
    path = tmp_path / "clip.flac"
    path.write_bytes(flac(2.0, 16_000))
    source = FileInput(path, max_s=10, chunk_s=0.05)
    await source.start()
    events = source.events()
    first = asyncio.ensure_future(anext(events))
    await source.aclose()  # races the decoding step; the step finishes or sees the close, never crashes
    await asyncio.gather(first, return_exceptions=True)
    assert [e async for e in events] == []


def frames_of(avatar: LoadedAvatar, chunks: list[np.ndarray], rate: int) -> list[tuple[bytes, bytes]]:
    """Render as a file session's frame loop does: whatever is pending after each chunk arrives."""
    renderer = EssenceRenderer(avatar, "s")
    out = []

    def drain() -> None:
        while renderer.pending_frames():
            frame = renderer.next_frame()
            out.append((frame.image.tobytes(), frame.audio.tobytes()))

    for chunk in chunks:
        renderer.push_audio(chunk, rate)
        drain()
    renderer.flush()
    drain()
    return out


@pytest.mark.parametrize("rate", [8_000, 44_100, 192_000])
async def test_the_essence_renderer_draws_the_same_frames_from_chunks_as_from_the_whole_clip(
    essence_avatar: LoadedAvatar, tmp_path: Path, rate: int
) -> None:
    path = tmp_path / "clip.flac"
    path.write_bytes(flac(1.5, rate))
    source = FileInput(path, max_s=10, chunk_s=0.07)
    await source.start()
    chunks = [e.pcm for e in [e async for e in source.events()] if isinstance(e, SpeechChunk)]
    whole = frames_of(essence_avatar, [whole_clip_decode(path.read_bytes())], rate)
    assert len(chunks) > 10
    assert frames_of(essence_avatar, chunks, rate) == whole
    assert len(whole) == -(-int(1.5 * 16_000) // 640)
