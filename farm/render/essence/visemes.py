"""Audio -> mouth shape, learning-free: two interpretable features per 40 ms and a nearest centre.

Features of a frame (from its RMS energy and its log-mel row, ``farm.render.audio``):

* openness: loudness in dBFS mapped linearly from ``floor_db`` (closed) to ``floor_db + range_db``
  (fully open), reduced for hiss-like frames (a large share of power above 3 kHz: s, f, sh are
  spoken through nearly closed lips);
* width: the spectral centroid of the 250-3500 Hz band, where the second formant lives: low
  (o, u) -> round lips, high (i, e) -> spread lips; it only matters once the mouth opens.

Both are smoothed with an attack/release filter (opening is fast, closing a little slower) so the
mouth does not flicker, then the nearest shape centre (openness, width) of the bank is chosen, with
a small hysteresis margin. Why not learned clusters: a single portrait gives no audio-visual pairs
to learn from, while loudness tracks jaw opening and F2 tracks lip spreading well enough for a
25 fps avatar, and each number here can be checked by ear and eye.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from farm.render.audio import mel_filterbank
from farm.render.base import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME

FEATURES_KIND = "energy-centroid-v1"

DEFAULT_CONFIG: dict[str, float] = {
    "floor_db": -52.0,
    "range_db": 34.0,
    "hiss_share": 0.45,
    "hiss_hz": 3000.0,
    "centroid_mid_hz": 1250.0,
    "centroid_span_hz": 650.0,
    "attack": 0.7,
    "release": 0.45,
    "width_alpha": 0.35,
    "width_weight": 0.3,
    "hysteresis": 0.004,
}


@functools.cache
def _mel_centres_hz() -> np.ndarray:
    bank = mel_filterbank(SAMPLES_PER_FRAME)
    freqs = np.linspace(0.0, SAMPLE_RATE_HZ / 2, bank.shape[1])
    return (bank @ freqs / np.maximum(bank.sum(axis=1), 1e-9)).astype(np.float32)


@dataclass
class ShapeSelector:
    """Per-session state of the audio -> shape mapping (smoothed features and the current shape)."""

    centres: np.ndarray  # (shapes, 2) openness, width
    config: dict[str, float]
    open_s: float = 0.0
    width_s: float = 0.0
    current: int = 0

    def __post_init__(self) -> None:
        self._mel_hz = _mel_centres_hz()
        self._closed = int(np.argmin(np.abs(self.centres[:, 0]) + np.abs(self.centres[:, 1])))
        self.current = self._closed

    def reset(self) -> None:
        """Back to a closed mouth (after an interrupt or at the end of speech)."""
        self.open_s = 0.0
        self.width_s = 0.0
        self.current = self._closed

    def raw_features(self, energy: float, mel_row: np.ndarray) -> tuple[float, float]:
        """(openness, width) of one frame before smoothing."""
        c = self.config
        level_db = 20.0 * np.log10(max(energy, 1e-9))
        openness = float(np.clip((level_db - c["floor_db"]) / c["range_db"], 0.0, 1.0))
        power = np.exp(mel_row.astype(np.float64))
        total = float(power.sum()) + 1e-12
        hiss = float(power[self._mel_hz >= c["hiss_hz"]].sum()) / total
        openness *= 1.0 - c["hiss_share"] * float(np.clip((hiss - 0.25) / 0.45, 0.0, 1.0))
        band = (self._mel_hz >= 250.0) & (self._mel_hz <= 3500.0)
        centroid = float((power[band] * self._mel_hz[band]).sum() / (power[band].sum() + 1e-12))
        width = float(np.clip((centroid - c["centroid_mid_hz"]) / c["centroid_span_hz"], -1.0, 1.0))
        return openness, width * min(1.0, openness * 3.0)

    def step(self, energy: float, mel_row: np.ndarray) -> int:
        """Advance one frame; returns the index of the shape to show."""
        c = self.config
        openness, width = self.raw_features(energy, mel_row)
        alpha = c["attack"] if openness > self.open_s else c["release"]
        self.open_s += alpha * (openness - self.open_s)
        self.width_s += c["width_alpha"] * (width - self.width_s)
        if self.open_s < 0.02:
            self.open_s = 0.0
        point = np.array([self.open_s, self.width_s], np.float32)
        weights = np.array([1.0, c["width_weight"]], np.float32)
        dist = (((self.centres - point) * weights) ** 2).sum(axis=1)
        best = int(np.argmin(dist))
        if best != self.current and dist[best] > dist[self.current] - c["hysteresis"]:
            best = self.current
        self.current = best
        return best
