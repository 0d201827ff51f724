"""Decoding and validation of uploaded media: speech clips (PyAV) and face images (Pillow).

Both run in the API process before anything is stored or enqueued, so bad input fails fast with a
message a person can act on. Image size limits are checked from the header, before decoding
(decompression bombs never allocate their pixels).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from farm.errors import InvalidAudio, InvalidImage, PayloadTooLarge

AUDIO_FORMATS_HINT = "WAV, MP3, OGG/Opus, FLAC or M4A"


def decode_audio(data: bytes, *, max_s: float) -> tuple[np.ndarray, int]:
    """Decode any audio PyAV reads into int16 mono PCM at its own sample rate.

    Raises InvalidAudio for empty, garbage or silent-container input and PayloadTooLarge for a clip
    longer than ``max_s`` seconds.
    """
    if not data:
        raise InvalidAudio(f"the audio upload is empty; send {AUDIO_FORMATS_HINT}")
    try:
        return _decode_audio(data, max_s)
    except (InvalidAudio, PayloadTooLarge):
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        raise InvalidAudio(f"the audio upload could not be decoded; send {AUDIO_FORMATS_HINT}") from exc


def _decode_audio(data: bytes, max_s: float) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise InvalidAudio(f"the upload has no audio track; send {AUDIO_FORMATS_HINT}")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        if rate <= 0:
            raise InvalidAudio("the audio track has no sample rate")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        total = 0
        limit = int(max_s * rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                total += chunk.size
            if total > limit:
                raise PayloadTooLarge(f"the audio clip is longer than the {max_s:g} s limit")
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    pcm = np.concatenate(chunks).astype(np.int16, copy=False) if chunks else np.zeros(0, np.int16)
    if pcm.size == 0:
        raise InvalidAudio(f"the audio upload contains no samples; send {AUDIO_FORMATS_HINT}")
    if pcm.size > limit:
        raise PayloadTooLarge(f"the audio clip is longer than the {max_s:g} s limit")
    return pcm, rate


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
