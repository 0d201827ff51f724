"""Audio conversion and per-frame features used by every render engine."""

from __future__ import annotations

import numpy as np
import pytest

from farm.render import audio as audio_module
from farm.render.audio import MelStream, Resampler, frame_energy, log_mel, n_frames, to_mono_16k

pytestmark = pytest.mark.unit


def _tone(freq_hz: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_int16_stereo_48k_becomes_float_mono_16k() -> None:
    tone = _tone(440.0, 1.0, 48_000)
    stereo = np.stack([tone, tone], axis=1).ravel()
    pcm = (stereo * 32767).astype(np.int16)
    out = to_mono_16k(pcm, 48_000, channels=2)
    assert out.dtype == np.float32
    assert out.shape == (16_000,)
    assert np.allclose(out[100:-100], _tone(440.0, 1.0, 16_000)[100:-100], atol=0.01)


def test_resampling_keeps_the_pitch_of_a_tone() -> None:
    out = to_mono_16k(_tone(1000.0, 1.0, 22_050), 22_050)
    spectrum = np.abs(np.fft.rfft(out))
    peak_hz = np.argmax(spectrum) * 16_000 / out.shape[0]
    assert abs(peak_hz - 1000.0) < 3.0


def test_float_input_is_clipped_to_unit_range() -> None:
    out = to_mono_16k(np.array([2.0, -3.0, 0.25], dtype=np.float64), 16_000)
    assert out.tolist() == [1.0, -1.0, 0.25]


def test_one_feature_row_per_started_frame() -> None:
    for samples in (0, 1, 639, 640, 641, 16_000):
        audio = np.zeros(samples, np.float32)
        assert n_frames(samples) == -(-samples // 640)
        assert log_mel(audio).shape == (n_frames(samples), 80)
        assert frame_energy(audio).shape == (n_frames(samples),)


def test_energy_is_the_rms_of_each_frame() -> None:
    audio = np.concatenate([np.zeros(640), np.full(640, 0.5), np.full(100, -0.2)]).astype(np.float32)
    energy = frame_energy(audio)
    assert np.allclose(energy, [0.0, 0.5, np.sqrt(100 * 0.04 / 640)], atol=1e-6)


def test_mel_rows_put_a_low_tone_below_a_high_tone() -> None:
    low = log_mel(_tone(200.0, 0.2, 16_000))[2]
    high = log_mel(_tone(4000.0, 0.2, 16_000))[2]
    assert int(np.argmax(low)) < int(np.argmax(high))


@pytest.mark.parametrize("win_length", [640, 800, 1280])
def test_streaming_rows_equal_batch_rows_whatever_the_chunking(win_length: int) -> None:
    rng = np.random.default_rng(7)
    audio = (0.1 * rng.standard_normal(16_000 + 321)).astype(np.float32)
    stream = MelStream(win_length=win_length)
    rows, start = [], 0
    while start < audio.shape[0]:
        size = int(rng.integers(1, 2_000))
        rows.append(stream.push(audio[start : start + size]))
        start += size
    rows.append(stream.finish())
    assert np.allclose(np.concatenate(rows), log_mel(audio, win_length=win_length), atol=1e-4)


@pytest.mark.parametrize("rate", [48_000, 44_100, 24_000, 22_050, 8_000, 16_000])
def test_the_streaming_resampler_equals_whole_clip_resampling(rate: int) -> None:
    rng = np.random.default_rng(rate)
    audio = (0.2 * rng.standard_normal(rate // 2 + 77)).astype(np.float32)
    resampler = Resampler(rate)
    parts, start = [], 0
    while start < audio.shape[0]:
        size = int(rng.integers(1, 1_500))
        parts.append(resampler.push(audio[start : start + size]))
        start += size
    parts.append(resampler.finish())
    streamed = np.clip(np.concatenate(parts), -1.0, 1.0)
    whole = to_mono_16k(audio, rate)
    assert streamed.shape == whole.shape
    assert np.allclose(streamed, whole, atol=1e-5)


def _resample(resampler: Resampler, audio: np.ndarray, sizes: list[int]) -> np.ndarray:
    parts, start = [], 0
    for size in sizes:
        parts.append(resampler.push(audio[start : start + size]))
        start += size
    parts.append(resampler.push(audio[start:]))
    parts.append(resampler.finish())
    return np.concatenate(parts)


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000, 192_000])
def test_block_wise_resampling_is_bit_identical_to_one_block(rate: int) -> None:
    rng = np.random.default_rng(rate)
    audio = (0.2 * rng.standard_normal(rate + 313)).astype(np.float32)
    one_block = Resampler(rate)
    one_block._block_out = 1 << 40  # the whole clip in one gather, as before blocks existed
    small_blocks = Resampler(rate)
    small_blocks._block_out = 97
    whole = _resample(one_block, audio, [])
    assert np.array_equal(_resample(small_blocks, audio, []), whole)
    assert whole.shape == to_mono_16k(audio, rate).shape


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000, 192_000])
def test_chunked_pushes_are_bit_identical_to_one_whole_clip_push(rate: int) -> None:
    rng = np.random.default_rng(rate + 1)
    audio = (0.2 * rng.standard_normal(2 * rate + 55)).astype(np.float32)
    sizes = [int(s) for s in rng.integers(1, rate // 3, size=8)]
    chunked = _resample(Resampler(rate), audio, sizes)
    whole = _resample(Resampler(rate), audio, [])
    assert np.array_equal(chunked, whole)
    assert np.allclose(np.clip(whole, -1.0, 1.0), to_mono_16k(audio, rate), atol=1e-5)


def test_resampler_scratch_is_bounded_by_its_block_not_by_the_clip() -> None:
    for rate in (8_000, 22_050, 44_100, 48_000, 96_000, 192_000):
        resampler = Resampler(rate)
        assert resampler._block_out * resampler._k <= 1 << 21


def test_mel_rows_of_a_long_push_are_computed_in_blocks_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal(16_000 * 90 + 17)).astype(np.float32)  # > one block of rows
    blocked = MelStream().push(audio)
    monkeypatch.setattr(audio_module, "_BLOCK_ELEMENTS", 1 << 40)
    assert np.array_equal(blocked, MelStream().push(audio))
    assert np.allclose(blocked, log_mel(audio)[: blocked.shape[0]], atol=1e-4)
