"""Audio features shared by the render engines: 16 kHz mono conversion, log-mel rows and energy.

Every engine consumes audio as float32 mono at 16 kHz (``SAMPLE_RATE_HZ``) and describes it with
one feature row per 40 ms video frame (640 samples). ``log_mel`` and ``frame_energy`` work on a
whole clip; ``MelStream`` produces the same rows incrementally as audio arrives, so a streaming
renderer and an offline recorder see identical features whatever the chunking.

Conventions: frame ``i`` covers samples ``[640*i, 640*(i+1))``; a clip of ``n`` samples has
``ceil(n / 640)`` frames (the last one zero-padded). Mel rows are the natural log of mel-band power
(floored at ``1e-10``) over a Hann window of ``win_length`` samples centred on the frame's centre.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from farm.render.base import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME

N_MELS = 80
FMIN_HZ = 55.0
FMAX_HZ = 7600.0
LOG_FLOOR = 1e-10
# Scratch arrays of the block-wise computations hold at most this many elements (16 MiB of float64),
# so memory is bounded by the block, never by the length of the clip.
_BLOCK_ELEMENTS = 1 << 21


def to_mono_16k(pcm: np.ndarray, sample_rate: int, channels: int = 1) -> np.ndarray:
    """Convert PCM (int16/int32/float, interleaved or (n, channels)) to float32 mono 16 kHz in [-1, 1].

    Memory is linear in ``pcm`` (``resample_poly`` filters without an (output x taps) matrix); callers
    with a long clip stream it through ``Resampler`` in bounded chunks instead.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    data = np.asarray(pcm)
    if data.ndim == 1 and channels > 1:
        usable = (data.shape[0] // channels) * channels
        data = data[:usable].reshape(-1, channels)
    if np.issubdtype(data.dtype, np.integer):
        scale = float(np.iinfo(data.dtype).max) + 1.0
        audio = data.astype(np.float32) / np.float32(scale)
    else:
        audio = data.astype(np.float32, copy=False)
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)
    elif audio.ndim != 1:
        raise ValueError(f"pcm must be 1-D or (n, channels), got shape {data.shape}")
    if sample_rate != SAMPLE_RATE_HZ and audio.size:
        # Imported here: scipy.signal (with scipy.stats and scipy.interpolate) costs ~0.75 s of CPU to
        # import, and no worker path resamples a whole clip (rooms stream through ``Resampler``).
        from scipy.signal import resample_poly

        ratio = Fraction(SAMPLE_RATE_HZ, sample_rate)
        audio = resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)


def n_frames(n_samples: int) -> int:
    """Number of 40 ms frames a clip of ``n_samples`` (16 kHz) spans: ``ceil(n / 640)``."""
    return math.ceil(n_samples / SAMPLES_PER_FRAME)


def frame_energy(samples_16k: np.ndarray) -> np.ndarray:
    """RMS of each 640-sample frame, shape ``(n_frames,)`` float32 (last frame zero-padded)."""
    frames = _pad_to_frames(np.asarray(samples_16k, dtype=np.float32))
    return np.sqrt(np.mean(np.square(frames, dtype=np.float32), axis=1, dtype=np.float32)).astype(np.float32)


def _pad_to_frames(samples: np.ndarray) -> np.ndarray:
    count = n_frames(samples.shape[0])
    padded = np.zeros(count * SAMPLES_PER_FRAME, dtype=np.float32)
    padded[: samples.shape[0]] = samples
    return padded.reshape(count, SAMPLES_PER_FRAME)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.cache
def mel_filterbank(
    n_fft: int, n_mels: int = N_MELS, fmin_hz: float = FMIN_HZ, fmax_hz: float = FMAX_HZ
) -> np.ndarray:
    """Triangular HTK-mel filters, shape ``(n_mels, n_fft // 2 + 1)``, area-normalised (Slaney)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE_HZ / 2, n_fft // 2 + 1)
    mel_points = np.linspace(_hz_to_mel(np.array(fmin_hz)), _hz_to_mel(np.array(fmax_hz)), n_mels + 2)
    edges = _mel_to_hz(mel_points)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank *= 2.0 / (upper - lower)
    bank.setflags(write=False)
    return bank.astype(np.float32)


@functools.cache
def _hann(win_length: int) -> np.ndarray:
    window = np.hanning(win_length + 1)[:-1].astype(np.float32)
    window.setflags(write=False)
    return window


def _mel_rows(windows: np.ndarray, n_mels: int) -> np.ndarray:
    """Log-mel rows of already-cut windows, shape (k, win_length) -> (k, n_mels)."""
    win_length = windows.shape[1]
    spectrum = np.fft.rfft(windows * _hann(win_length), axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel = power @ mel_filterbank(win_length, n_mels).T
    return np.log(np.maximum(mel, LOG_FLOOR)).astype(np.float32)


def _context(win_length: int) -> int:
    if win_length < SAMPLES_PER_FRAME or (win_length - SAMPLES_PER_FRAME) % 2:
        raise ValueError("win_length must be >= 640 and differ from 640 by an even number")
    return (win_length - SAMPLES_PER_FRAME) // 2


def log_mel(
    samples_16k: np.ndarray, *, n_mels: int = N_MELS, win_length: int = SAMPLES_PER_FRAME
) -> np.ndarray:
    """Log-mel features, shape ``(ceil(n / 640), n_mels)`` float32, one row per 40 ms frame.

    Row ``i`` is computed over ``win_length`` samples centred on the centre of frame ``i``; samples
    outside the clip count as zeros. The default window is the frame itself (no look-ahead).
    """
    samples = np.asarray(samples_16k, dtype=np.float32)
    context = _context(win_length)
    count = n_frames(samples.shape[0])
    padded = np.zeros(count * SAMPLES_PER_FRAME + 2 * context, dtype=np.float32)
    padded[context : context + samples.shape[0]] = samples
    if count == 0:
        return np.zeros((0, n_mels), dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(padded, win_length)[::SAMPLES_PER_FRAME][:count]
    return _mel_rows(windows, n_mels)


class MelStream:
    """Incremental ``log_mel``: push audio in any chunking, get the same rows as the batch function.

    A row for frame ``i`` is emitted once the samples its window needs have arrived (``(win_length -
    640) / 2`` samples of look-ahead; none with the default window). ``finish()`` zero-pads the tail
    and emits the rest, exactly like ``log_mel`` on the concatenated clip.
    """

    def __init__(self, *, n_mels: int = N_MELS, win_length: int = SAMPLES_PER_FRAME) -> None:
        self._n_mels = n_mels
        self._win_length = win_length
        self._context = _context(win_length)
        self._reset()

    def _reset(self) -> None:
        self._buffer = np.zeros(self._context, dtype=np.float32)  # left zero context of frame 0
        self._received = 0
        self._emitted = 0

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    def push(self, samples_16k: np.ndarray) -> np.ndarray:
        """Add samples; return the rows (k, n_mels) that became complete."""
        chunk = np.asarray(samples_16k, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, chunk])
        self._received += chunk.shape[0]
        ready = max(0, (self._received - self._context) // SAMPLES_PER_FRAME - self._emitted)
        return self._emit(ready)

    def finish(self) -> np.ndarray:
        """Zero-pad the tail and return every remaining row; the stream then starts afresh."""
        remaining = n_frames(self._received) - self._emitted
        need = remaining * SAMPLES_PER_FRAME + 2 * self._context
        if self._buffer.shape[0] < need:
            self._buffer = np.concatenate([self._buffer, np.zeros(need - self._buffer.shape[0], np.float32)])
        rows = self._emit(remaining)
        self._reset()
        return rows

    def _emit(self, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros((0, self._n_mels), dtype=np.float32)
        span = (count - 1) * SAMPLES_PER_FRAME + self._win_length
        windows = np.lib.stride_tricks.sliding_window_view(self._buffer[:span], self._win_length)
        starts = windows[::SAMPLES_PER_FRAME][:count]  # a view: no copy of the audio
        block = max(1, _BLOCK_ELEMENTS // self._win_length)
        rows = np.empty((count, self._n_mels), np.float32)
        for begin in range(0, count, block):
            rows[begin : begin + block] = _mel_rows(starts[begin : begin + block], self._n_mels)
        self._buffer = self._buffer[count * SAMPLES_PER_FRAME :]
        self._emitted += count
        return rows


def kaiser_lowpass(numtaps: int, cutoff: float, beta: float) -> np.ndarray:
    """Linear-phase low-pass FIR taps, unit gain at DC: what ``resample_poly`` designs.

    Equal (to ~1e-17) to ``scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta))`` with
    ``cutoff`` relative to Nyquist; written here so that streaming resampling does not import
    scipy.signal.
    """
    m = np.arange(numtaps) - 0.5 * (numtaps - 1)
    taps = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, beta)
    result: np.ndarray = taps / taps.sum()
    return result


class Resampler:
    """Streaming polyphase resampler to 16 kHz: ``scipy.signal.resample_poly``'s output (to float32 rounding).

    Feeding a clip in any chunking and then calling ``finish()`` yields the same samples as
    ``to_mono_16k`` on the whole clip (no clicks at chunk boundaries). Output sample ``n`` is
    emitted as soon as the input it depends on has arrived (about 10 input samples of look-ahead).
    Outputs are computed in blocks of at most ``_BLOCK_ELEMENTS`` gathered inputs, so a push of any
    length needs scratch memory of one block (plus the chunk itself), with bit-identical results.
    """

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE_HZ) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError("sample rates must be positive")
        ratio = Fraction(rate_out, rate_in)
        self.rate_in = rate_in
        self._up, self._down = ratio.numerator, ratio.denominator
        max_rate = max(self._up, self._down)
        self._half = 10 * max_rate
        if max_rate > 1:
            taps = kaiser_lowpass(2 * self._half + 1, 1.0 / max_rate, beta=5.0) * self._up
        else:
            taps = np.zeros(2 * self._half + 1)
            taps[self._half] = 1.0
        self._k = (2 * self._half) // self._up + 1
        poly = np.zeros((self._up, self._k), np.float64)
        for r in range(self._up):
            idx = r + self._up * np.arange(self._k)
            valid = idx <= 2 * self._half
            poly[r, valid] = taps[idx[valid]]
        self._poly = poly
        self._block_out = max(1, _BLOCK_ELEMENTS // self._k)
        self._buffer = np.zeros(self._k, np.float64)
        self._offset = -self._k  # absolute input index of _buffer[0]
        self._n_in = 0
        self._n_out = 0

    @property
    def passthrough(self) -> bool:
        return self._up == self._down == 1

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add float samples at ``rate_in``; return the 16 kHz samples that became computable."""
        chunk = np.asarray(samples, dtype=np.float64)
        if self.passthrough:
            return chunk.astype(np.float32)
        self._buffer = np.concatenate([self._buffer, chunk])
        self._n_in += chunk.shape[0]
        # output n is ready when (n*down + half) // up <= n_in - 1
        ready = max(0, ((self._n_in - 1) * self._up + self._up - 1 - self._half) // self._down + 1)
        return self._emit(ready)

    def finish(self) -> np.ndarray:
        """Zero-pad the end of the input and return every remaining output sample."""
        if self.passthrough:
            return np.zeros(0, np.float32)
        total = -(-self._n_in * self._up // self._down)
        self._buffer = np.concatenate([self._buffer, np.zeros(self._k + 1, np.float64)])
        return self._emit(total)

    def _emit(self, upto: int) -> np.ndarray:
        """Outputs ``[_n_out, upto)``, computed ``_block_out`` at a time (bounded scratch memory)."""
        if upto <= self._n_out:
            return np.zeros(0, np.float32)
        out = np.empty(upto - self._n_out, np.float32)
        for begin in range(self._n_out, upto, self._block_out):
            end = min(upto, begin + self._block_out)
            out[begin - self._n_out : end - self._n_out] = self._outputs(begin, end)
        self._n_out = upto
        next_min = (upto * self._down + self._half) // self._up - (self._k - 1)
        drop = max(0, next_min - self._offset)
        self._buffer = self._buffer[drop:]
        self._offset += drop
        return out

    def _outputs(self, begin: int, end: int) -> np.ndarray:
        """Output samples ``[begin, end)``: each one a dot product of ``k`` inputs with its phase's taps."""
        n = np.arange(begin, end, dtype=np.int64)
        t = n * self._down + self._half
        jmax = t // self._up
        cols = (jmax - self._offset)[:, None] - np.arange(self._k)[None, :]
        return (self._buffer[cols] * self._poly[t % self._up]).sum(axis=1).astype(np.float32)
