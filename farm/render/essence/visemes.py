"""Speech → mouth shapes of the Essence bank: visemes (the default) and the loudness baseline.

``ShapeSelector`` (the default) turns a ``MouthPose`` from the viseme model
(``farm.render.speech.mouth``: smoothed, dominance-blended visemes) into a blend of at most four
bank shapes. The pose's (open, width) picks the four surrounding shapes of the bank's grid of
openings × widths with bilinear weights, so neighbouring pictures cross-fade (no ghost of a far
shape); a bank whose shapes name the visemes they picture (pack version 2: ``pressed`` for p/b/m,
``ff``, ``th``, ``ss``, ``ch``) adds those articulated shapes with the weight of their visemes. A
silent pose is the bank's relaxed closed shape.

``LoudnessSelector`` is the model before visemes, kept as the baseline ``farm bench lipsync``
measures against. Features of a frame (from its RMS energy and its log-mel row,
``farm.render.audio``):

* openness: loudness in dBFS mapped linearly from ``floor_db`` (closed) to ``floor_db + range_db``
  (fully open), reduced for hiss-like frames (a large share of power above 3 kHz: s, f, sh are
  spoken through nearly closed lips);
* width: the spectral centroid of the 250-3500 Hz band, where the second formant lives: low
  (o, u) -> round lips, high (i, e) -> spread lips; it only matters once the mouth opens.

Both are smoothed with an attack/release filter (opening is fast, closing a little slower), then
the nearest shape centre (openness, width) of the bank is chosen, with a small hysteresis margin.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from farm.render.audio import mel_filterbank
from farm.render.base import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from farm.render.essence.pack import ShapeInfo
from farm.render.speech.mouth import MouthPose
from farm.render.speech.visemes import INDEX

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
class LoudnessSelector:
    """The baseline: per-session state of the loudness -> shape mapping (smoothed features, current shape)."""

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


Blend = tuple[tuple[int, float], ...]
MAX_BLEND = 4
MIN_WEIGHT = 0.03
_FLAGS = ("press", "tuck", "tongue", "teeth")


def _articulated(shape: object) -> bool:
    return any(bool(getattr(shape, flag, False)) for flag in _FLAGS)


class ShapeSelector:
    """Viseme mouth pose → blend of bank shapes (see the module docstring). Stateless per frame:
    the smoothing lives in the pose's ``Coarticulation``."""

    def __init__(self, shapes: Sequence[ShapeInfo]) -> None:
        grid = {
            (round(float(s.open), 3), round(float(s.width), 3)): i
            for i, s in enumerate(shapes)
            if not _articulated(s)
        }
        if (0.0, 0.0) not in grid:
            raise ValueError("the mouth bank has no relaxed closed shape (open 0, width 0)")
        self._grid = grid
        self._opens = np.array(sorted({o for o, _ in grid}), np.float32)
        self._widths = np.array(sorted({w for _, w in grid}), np.float32)
        self.closed = grid[(0.0, 0.0)]
        self._articulated: list[tuple[int, list[int]]] = [
            (i, [INDEX[v] for v in (getattr(s, "visemes", None) or ()) if v in INDEX])
            for i, s in enumerate(shapes)
            if _articulated(s) and tuple(getattr(s, "visemes", None) or ())
        ]

    def blend(self, pose: MouthPose) -> Blend:
        """At most ``MAX_BLEND`` (shape index, weight) pairs, weights summing to 1."""
        weights: dict[int, float] = {}
        special = 0.0
        for index, visemes in self._articulated:
            w = float(pose.weights[visemes].sum())
            if w > MIN_WEIGHT:
                weights[index] = weights.get(index, 0.0) + w
                special += w
        for index, w in self._grid_weights(pose.open, pose.width):
            weights[index] = weights.get(index, 0.0) + w * (1.0 - special)
        ranked = sorted(((i, w) for i, w in weights.items() if w > MIN_WEIGHT), key=lambda e: -e[1])[
            :MAX_BLEND
        ]
        total = sum(w for _, w in ranked)
        if total <= 0.0:
            return ((self.closed, 1.0),)
        return tuple((i, w / total) for i, w in ranked)

    def _grid_weights(self, openness: float, width: float) -> list[tuple[int, float]]:
        out = []
        for o, wo in _bracket(self._opens, openness):
            for k, wk in _bracket(self._widths, width):
                index = self._grid.get((round(float(o), 3), round(float(k), 3)))
                if index is not None and wo * wk > 0.0:
                    out.append((index, wo * wk))
        return out or [(self.closed, 1.0)]


def _bracket(levels: np.ndarray, value: float) -> list[tuple[float, float]]:
    """The two grid levels around ``value`` with linear weights (one level at the ends)."""
    if levels.size == 1 or value <= levels[0]:
        return [(float(levels[0]), 1.0)]
    if value >= levels[-1]:
        return [(float(levels[-1]), 1.0)]
    hi = int(np.searchsorted(levels, value, side="right"))
    lo = hi - 1
    t = (value - float(levels[lo])) / float(levels[hi] - levels[lo])
    return [(float(levels[lo]), 1.0 - t), (float(levels[hi]), t)]
