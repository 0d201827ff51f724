"""Uploaded media: audio decodes to int16 mono or fails with an actionable error; images are checked
for pixels before decoding; blobs are content-addressed and refuse anything that is not a ref."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from farm.infra.blobs import BlobStore
from farm.infra.media import decode_audio, load_image_rgb, validate_image
from farm.kernel.errors import InvalidAudio, InvalidImage, NotFound, PayloadTooLarge, ValidationError

pytestmark = pytest.mark.unit


def wav(seconds: float, rate: int = 22_050, channels: int = 2) -> bytes:
    pcm = (np.random.default_rng(0).standard_normal(int(seconds * rate) * channels) * 2000).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def ogg_opus(seconds: float) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        samples = np.zeros((1, int(seconds * 48_000)), np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 48_000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_a_stereo_wav_decodes_to_mono_int16_at_its_rate() -> None:
    pcm, rate = decode_audio(wav(1.0), max_s=10)
    assert rate == 22_050 and pcm.dtype == np.int16 and pcm.shape == (22_050,)


def test_an_ogg_opus_clip_decodes() -> None:
    pcm, rate = decode_audio(ogg_opus(0.5), max_s=10)
    assert rate == 48_000 and abs(pcm.size / rate - 0.5) < 0.05


@pytest.mark.parametrize("data", [b"", b"definitely not audio" * 50, png(8, 8)])
def test_garbage_audio_is_invalid_audio(data: bytes) -> None:
    with pytest.raises(InvalidAudio, match="WAV"):
        decode_audio(data, max_s=10)


def test_a_clip_over_the_limit_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_audio(wav(2.0), max_s=1.0)


def test_an_image_reports_its_size_and_loads_as_rgb(tmp_path: Path) -> None:
    assert validate_image(png(30, 20), max_pixels=10_000) == (30, 20)
    path = tmp_path / "i.png"
    path.write_bytes(png(30, 20))
    assert load_image_rgb(path, 10_000).shape == (20, 30, 3)


def test_too_many_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(PayloadTooLarge):
        validate_image(png(200, 200), max_pixels=10_000)


@pytest.mark.parametrize("data", [b"", b"GIF89a-but-not-really", png(30, 20)[:40], wav(0.1)])
def test_corrupt_or_non_images_are_invalid_images(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        validate_image(data, max_pixels=10_000)


def test_blobs_are_content_addressed_and_idempotent(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    ref = blobs.put(b"hello", ".wav")
    assert ref.startswith("sha256/") and ref.endswith(".wav")
    assert blobs.put(b"hello", ".wav") == ref
    assert blobs.get(ref) == b"hello"
    assert [p.name for p in (tmp_path / "sha256").iterdir()] == [ref.split("/")[1]]


@pytest.mark.parametrize("ref", ["../etc/passwd", "sha256/../../x", "sha256/abc", "/abs"])
def test_blob_refs_cannot_escape_the_store(tmp_path: Path, ref: str) -> None:
    with pytest.raises(ValidationError):
        BlobStore(tmp_path).path(ref)


def test_a_missing_blob_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        BlobStore(tmp_path).get("sha256/" + "0" * 64)
