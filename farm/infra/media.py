"""Decoding and validation of uploaded media: speech clips (PyAV) and face images (Pillow).

Both run in the API process before anything is stored or enqueued, so bad input fails fast with a
message a person can act on. Audio is decoded as a stream (``PcmReader``): neither the API's length
probe (``measure_audio``) nor a worker rendering a clip ever holds the whole decoded clip. Image size
limits are checked from the header, before decoding
(decompression bombs never allocate their pixels).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from farm.kernel.errors import InvalidAudio, InvalidImage, PayloadTooLarge

AUDIO_FORMATS_HINT = "WAV, MP3, OGG/Opus, FLAC or M4A"
T = TypeVar("T")


DEFAULT_CHUNK_S = 0.5  # PcmReader chunks: half a second of PCM at the clip's own rate


@dataclass(frozen=True, slots=True)
class AudioLimits:
    """What an accepted clip may be. Size and sample rate are checked before any decoding; length while
    decoding, as soon as the decoded samples pass it (no clip is decoded past its limit)."""

    max_s: float
    max_mb: float | None = None
    max_sample_rate_hz: int | None = None


class PcmReader:
    """One clip decoded frame by frame into int16 mono PCM at its own sample rate, never whole.

    Opening checks the container, its audio track, the upload size and the sample rate (InvalidAudio /
    PayloadTooLarge). ``read()`` returns the next chunk of exactly ``chunk_samples`` (the last one
    shorter), ``None`` at the end; memory is one chunk plus one codec frame whatever the clip's length.
    Not thread-safe, but a caller may run successive ``read()`` calls on different threads.
    """

    def __init__(
        self, source: bytes | Path, limits: AudioLimits, *, chunk_s: float = DEFAULT_CHUNK_S
    ) -> None:
        size = source.stat().st_size if isinstance(source, Path) else len(source)
        if size == 0:
            raise InvalidAudio(f"the audio upload is empty; send {AUDIO_FORMATS_HINT}")
        if limits.max_mb is not None and size > limits.max_mb * 1024 * 1024:
            raise PayloadTooLarge(f"the audio upload is larger than the {limits.max_mb:g} MB limit")
        self._limits = limits
        self._container = _translated(
            lambda: av.open(str(source) if isinstance(source, Path) else io.BytesIO(source), mode="r")
        )
        try:
            self.rate = self._open_stream()
        except BaseException:
            self._container.close()
            raise
        self._limit = int(limits.max_s * self.rate)
        self.chunk_samples = max(1, int(chunk_s * self.rate))
        self.samples_read = 0
        self._chunks = self._chunk_iter()

    def _open_stream(self) -> int:
        if not self._container.streams.audio:
            raise InvalidAudio(f"the upload has no audio track; send {AUDIO_FORMATS_HINT}")
        self._stream = self._container.streams.audio[0]
        rate = int(self._stream.codec_context.sample_rate or self._stream.rate or 0)
        if rate <= 0:
            raise InvalidAudio("the audio track has no sample rate")
        top = self._limits.max_sample_rate_hz
        if top is not None and rate > top:
            raise PayloadTooLarge(
                f"the audio is sampled at {rate} Hz, over the {top} Hz limit; resample it to {top} Hz or less"
            )
        return rate

    def read(self) -> np.ndarray | None:
        """The next chunk of int16 PCM, or None once the clip is over (then the reader is closed)."""
        try:
            return _translated(lambda: next(self._chunks, None))
        except BaseException:
            self.close()
            raise

    def rest_s(self) -> float:
        """Decode the clip without keeping any of it (instead of ``read``); its length in seconds."""
        _translated(lambda: sum(pcm.size for pcm in self._frames()))
        return self.samples_read / self.rate

    def __iter__(self) -> Iterator[np.ndarray]:
        while (chunk := self.read()) is not None:
            yield chunk

    def close(self) -> None:
        self._chunks.close()
        self._container.close()

    def __enter__(self) -> PcmReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _frames(self) -> Generator[np.ndarray]:
        """Decoded PCM per codec frame; PayloadTooLarge as soon as the clip passes ``max_s``."""
        resampler = av.AudioResampler(format="s16", layout="mono", rate=self.rate)
        for frame in self._container.decode(self._stream):
            for out in resampler.resample(frame):
                yield self._count(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            yield self._count(out.to_ndarray().reshape(-1))
        if self.samples_read == 0:
            raise InvalidAudio(f"the audio upload contains no samples; send {AUDIO_FORMATS_HINT}")

    def _count(self, pcm: np.ndarray) -> np.ndarray:
        self.samples_read += pcm.size
        if self.samples_read > self._limit:
            raise PayloadTooLarge(f"the audio clip is longer than the {self._limits.max_s:g} s limit")
        return pcm.astype(np.int16, copy=False)

    def _chunk_iter(self) -> Generator[np.ndarray]:
        pending: list[np.ndarray] = []
        held = 0
        size = self.chunk_samples
        for pcm in self._frames():
            pending.append(pcm)
            held += pcm.size
            if held < size:
                continue
            joined = np.concatenate(pending)
            cut = 0
            while held - cut >= size:
                yield joined[cut : cut + size]
                cut += size
            rest = joined[cut:]
            pending, held = ([rest] if rest.size else []), rest.size
        if held:
            yield np.concatenate(pending)
        self._container.close()


def _translated(step: Callable[[], T]) -> T:
    """Run one decoding step; PyAV's and numpy's complaints about bad input become InvalidAudio."""
    try:
        return step()
    except (InvalidAudio, PayloadTooLarge):
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        raise InvalidAudio(f"the audio upload could not be decoded; send {AUDIO_FORMATS_HINT}") from exc


def measure_audio(source: bytes | Path, limits: AudioLimits) -> float:
    """The clip's length in seconds by a full streaming decode (what a worker will render), holding one
    codec frame at a time. Raises like ``PcmReader``. Blocking: run it off an event loop."""
    with PcmReader(source, limits) as reader:
        return reader.rest_s()


def decode_audio(data: bytes, *, max_s: float) -> tuple[np.ndarray, int]:
    """Decode a short clip whole into int16 mono PCM at its own sample rate (long clips: ``PcmReader``).

    Raises InvalidAudio for empty, garbage or silent-container input and PayloadTooLarge for a clip
    longer than ``max_s`` seconds.
    """
    with PcmReader(data, AudioLimits(max_s=max_s)) as reader:
        chunks = list(reader)
        return np.concatenate(chunks), reader.rate


def validate_image(data: bytes, *, max_pixels: int) -> tuple[int, int]:
    """Check that ``data`` is a decodable image of at most ``max_pixels``; return (width, height).

    PayloadTooLarge (413) for too many pixels, judged from the header before any decoding;
    InvalidImage (400) for empty, corrupt, truncated or non-image data.
    """
    _load(data, max_pixels)  # full decode: catches truncation that verify() misses
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def load_image_rgb(source: bytes | Path, max_pixels: int) -> np.ndarray:
    """Decode an image (bytes or a path) into an (H, W, 3) uint8 RGB array, EXIF orientation applied."""
    data = Path(source).read_bytes() if isinstance(source, Path) else source
    img = _load(data, max_pixels)
    return np.asarray(img, dtype=np.uint8)


def thumbnail_jpeg(data: bytes, side_px: int, *, max_pixels: int = 100_000_000) -> bytes:
    """A JPEG of the image at most ``side_px`` on a side (EXIF orientation applied; alpha on white)."""
    img = _load(data, max_pixels)
    img.thumbnail((side_px, side_px), Image.Resampling.LANCZOS)
    if img.mode != "RGB":
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        img = flat
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=82, optimize=True)
    return out.getvalue()


def _load(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise InvalidImage("the image upload is empty; send a PNG or JPEG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                if width <= 0 or height <= 0:
                    raise InvalidImage("the image has no pixels")
                if width * height > max_pixels:
                    raise PayloadTooLarge(
                        f"the image is {width}x{height}, over the limit of {max_pixels} pixels"
                    )
                probe.verify()
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                oriented = ImageOps.exif_transpose(img)
                return oriented.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge("the image is a decompression bomb (too many pixels)") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage("the upload is not an image Pillow can read; send a PNG or JPEG") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage("the image is corrupt or truncated; send a PNG or JPEG") from exc
