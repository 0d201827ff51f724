"""Audio augmentation for viseme training: room reverb, noise, level and channel colour.

Every impulse response is synthesised here (nothing is downloaded): a direct path at t = 0 (so the
labels keep their timing), a few early reflections at 2-30 ms, and an exponentially decaying noise
tail with the drawn RT60, darkened over time (air absorption) and scaled to a drawn
direct-to-reverberant ratio. Noise is white, pink, brown, speech-shaped or mains hum at a drawn
SNR. All draws come from the caller's ``numpy.random.Generator``, so a seed fixes the result.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

from farm.render.base import SAMPLE_RATE_HZ

REVERB_P = 0.5
NOISE_P = 0.7
CHANNEL_P = 0.2
RT60_S = (0.15, 0.9)
DRR_DB = (-2.0, 12.0)
SNR_DB = (5.0, 40.0)
LEVEL_DBFS = (-38.0, -10.0)  # speech RMS after augmentation


def room_impulse(rng: np.random.Generator, rt60_s: float, drr_db: float) -> np.ndarray:
    """A synthetic room impulse response at 16 kHz (direct path 1.0 at sample 0)."""
    length = int(rt60_s * SAMPLE_RATE_HZ)
    t = np.arange(length) / SAMPLE_RATE_HZ
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60_s)
    tail[: int(0.004 * SAMPLE_RATE_HZ)] = 0.0  # the tail builds up after the first reflections
    # air absorption: a one-pole low-pass whose cutoff falls with time, applied in four blocks
    out = np.zeros_like(tail)
    for k, block in enumerate(np.array_split(np.arange(length), 4)):
        alpha = 0.15 + 0.2 * k
        out[block] = lfilter([1.0 - alpha], [1.0, -alpha], tail[block])
    energy = float(np.sum(out**2)) + 1e-12
    out *= np.sqrt(10.0 ** (-drr_db / 10.0) / energy)
    for _ in range(rng.integers(2, 7)):
        delay = int(rng.uniform(0.002, 0.03) * SAMPLE_RATE_HZ)
        if delay < length:
            out[delay] += rng.uniform(0.15, 0.6) * rng.choice([-1.0, 1.0])
    out[0] = 1.0
    return out.astype(np.float32)


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise whose power falls as f^-exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2.0), n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def _speech_shaped(rng: np.random.Generator, n: int) -> np.ndarray:
    sos = butter(2, [150.0, 2500.0], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    noise = sosfilt(sos, rng.standard_normal(n))
    envelope = 1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(2.0, 6.0) * np.arange(n) / SAMPLE_RATE_HZ)
    noise = noise * envelope
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    base = rng.choice([50.0, 60.0])
    t = np.arange(n) / SAMPLE_RATE_HZ
    hum = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 6))
    return np.asarray(hum / (np.sqrt(np.mean(hum**2)) + 1e-12))


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS noise of a random kind."""
    kind = rng.integers(0, 5)
    if kind == 3:
        return _speech_shaped(rng, n)
    if kind == 4:
        return _hum(rng, n) + 0.3 * _coloured_noise(rng, n, 1.0)
    return _coloured_noise(rng, n, float(kind))


def _speech_rms(audio: np.ndarray) -> float:
    frames = audio[: len(audio) // 320 * 320].reshape(-1, 320)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    active = rms[rms > 0.1 * (rms.max() + 1e-12)]
    return float(np.sqrt(np.mean(active**2))) if active.size else 1e-6


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Reverb, channel colour, noise and level, each drawn (see the module docstring); float32 16 kHz."""
    x = np.asarray(audio, np.float64)
    n = x.shape[0]
    if rng.random() < REVERB_P:
        x = fftconvolve(x, room_impulse(rng, rng.uniform(*RT60_S), rng.uniform(*DRR_DB)))[:n]
    if rng.random() < CHANNEL_P:
        low, high = rng.uniform(80.0, 400.0), rng.uniform(3000.0, 7500.0)
        x = sosfilt(butter(2, [low, high], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos"), x)
    level = 10.0 ** (rng.uniform(*LEVEL_DBFS) / 20.0)
    x *= level / _speech_rms(x)
    if rng.random() < NOISE_P:
        snr_db = rng.uniform(*SNR_DB)
        x += noise(rng, n) * level * 10.0 ** (-snr_db / 20.0)
    return np.clip(x, -1.0, 1.0).astype(np.float32)
