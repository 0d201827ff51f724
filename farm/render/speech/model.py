"""The viseme model: 16 kHz speech → one probability row over the 15 visemes per 40 ms frame.

Architecture (numpy inference; training in ``training.trainer`` with torch):

    frame features f_t (160: 4 x 40 log-mel, ``features``), normalised with the training statistics
    x_t = relu(W_in [f_t, f_{t-1}] + b_in)                 (H_IN)
    h_t = GRU(x_t, h_{t-1})                                (H)
    p_{t-D} = softmax(W_out h_t + b_out)                   (15), D = ``delay_frames``

The output for frame ``i`` is emitted after the features of frame ``i + D`` are in, so the model
reads ``D`` frames plus 120 samples (7.5 ms) of audio past the frame's end: ``lookahead_samples``
(2 frames: 1400 samples, 87.5 ms). One step is a few small matrix-vector products.

Weights: ``weights/visemes.npz`` in this package, trained by the project (see
``weights/README.md`` for the command, seed, data recipe and licence). ``load_model()`` reads it
once per process; the arrays' names and shapes are checked against ``SIGNATURE`` at load.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm.kernel.errors import VisemeModelInvalid
from farm.render.base import SAMPLES_PER_FRAME
from farm.render.speech.features import FEATURES, FRAME_LOOKAHEAD_SAMPLES, FeatureStream, frame_features
from farm.render.speech.visemes import N_VISEMES, SIL, VISEMES

WEIGHTS_PATH = Path(__file__).with_name("weights") / "visemes.npz"
FORMAT = "farm-visemes-gru-1"


def signature(hidden_in: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Array name → shape of a weights file with the given layer sizes."""
    return {
        "mean": (FEATURES,),
        "std": (FEATURES,),
        "w_in": (hidden_in, 2 * FEATURES),
        "b_in": (hidden_in,),
        "w_ih": (3 * hidden, hidden_in),
        "b_ih": (3 * hidden,),
        "w_hh": (3 * hidden, hidden),
        "b_hh": (3 * hidden,),
        "w_out": (N_VISEMES, hidden),
        "b_out": (N_VISEMES,),
    }


@dataclass(frozen=True)
class VisemeModel:
    """Read-only weights shared by every stream of the process."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def delay_frames(self) -> int:
        return int(self.meta["delay_frames"])

    @property
    def lookahead_samples(self) -> int:
        """Audio after a frame's end the model reads before it emits that frame's row."""
        return self.delay_frames * SAMPLES_PER_FRAME + FRAME_LOOKAHEAD_SAMPLES

    @property
    def hidden(self) -> int:
        return int(self.arrays["w_hh"].shape[1])

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> VisemeModel:
        """Read and check a weights file (``VisemeModelInvalid`` names the file and the mismatch)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {
                    k: np.ascontiguousarray(data[k], dtype=np.float32) for k in data.files if k != "meta"
                }
                meta = json.loads(str(data["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise VisemeModelInvalid(f"viseme weights {path} are missing or unreadable: {exc}") from exc
        if meta.get("format") != FORMAT or meta.get("classes") != list(VISEMES):
            raise VisemeModelInvalid(
                f"viseme weights {path}: format {meta.get('format')!r}, expected {FORMAT!r}"
            )
        expected = signature(int(meta["hidden_in"]), int(meta["hidden"]))
        shapes = {k: tuple(v.shape) for k, v in arrays.items()}  # checked before anything is derived
        if shapes != expected:
            raise VisemeModelInvalid(
                f"viseme weights {path}: arrays {shapes} do not match the signature {expected}"
            )
        # Fold the input normalisation into the first layer:
        # W ((f - mean) / std) = (W / std) f - W (mean / std).
        scale = 1.0 / np.concatenate([arrays["std"], arrays["std"]])
        shift = np.concatenate([arrays["mean"], arrays["mean"]]) * scale
        arrays["w_in_folded"] = (arrays["w_in"] * scale[None, :]).astype(np.float32)
        arrays["b_in_folded"] = (arrays["b_in"] - arrays["w_in"] @ shift).astype(np.float32)
        for array in arrays.values():
            array.setflags(write=False)
        return cls(arrays, meta)

    def stream(self) -> VisemeStream:
        return VisemeStream(self)

    def predict(self, samples_16k: np.ndarray) -> np.ndarray:
        """Probabilities of a whole clip, ``(ceil(n / 640), 15)``: what a stream gives for it."""
        features = frame_features(samples_16k, extra_frames=self.delay_frames)
        if features.shape[0] == self.delay_frames:
            return np.zeros((0, N_VISEMES), np.float32)
        x = self._input_layer(features)
        h = np.zeros(self.hidden, np.float32)
        gates = x @ self.arrays["w_ih"].T + self.arrays["b_ih"]
        states = np.empty((features.shape[0], self.hidden), np.float32)
        for t in range(features.shape[0]):
            h = self._gru(gates[t], h)
            states[t] = h
        return _softmax(states[self.delay_frames :] @ self.arrays["w_out"].T + self.arrays["b_out"])

    def _input_layer(self, features: np.ndarray) -> np.ndarray:
        a = self.arrays
        previous = np.vstack(
            [a["mean"][None, :], features[:-1]]
        )  # frame -1 is "the mean": zero once normalised
        stacked = np.hstack([features, previous])
        return np.maximum(stacked @ a["w_in_folded"].T + a["b_in_folded"], 0.0).astype(np.float32)

    def _gru(self, gates_x: np.ndarray, h: np.ndarray) -> np.ndarray:
        a = self.arrays
        n = h.shape[0]
        gates_h = a["w_hh"] @ h + a["b_hh"]
        rz = 1.0 / (1.0 + np.exp(-(gates_x[: 2 * n] + gates_h[: 2 * n])))
        candidate = np.tanh(gates_x[2 * n :] + rz[:n] * gates_h[2 * n :])
        return ((1.0 - rz[n:]) * candidate + rz[n:] * h).astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


SILENCE_ROW = np.zeros(N_VISEMES, np.float32)
SILENCE_ROW[SIL] = 1.0
SILENCE_ROW.setflags(write=False)


class VisemeStream:
    """Streaming inference: ``push`` audio in any chunking, get each frame's row once its look-ahead
    arrived; ``finish`` ends the clip (it continues as silence) and returns the rest; ``reset``
    forgets everything (an interrupt). Rows are in frame order from frame 0 after each reset/finish.
    """

    def __init__(self, model: VisemeModel) -> None:
        self.model = model
        self._features = FeatureStream()
        self.reset()

    @property
    def lookahead_samples(self) -> int:
        return self.model.lookahead_samples

    def reset(self) -> None:
        self._features.reset()
        self._h = np.zeros(self.model.hidden, np.float32)
        self._previous = self.model.arrays["mean"].copy()  # normalises to zero, as in training
        self._steps = 0

    def push(self, samples_16k: np.ndarray) -> np.ndarray:
        """Add audio; return the rows ``(k, 15)`` that are now complete."""
        samples = np.asarray(samples_16k, np.float32).reshape(-1)
        return self._run(self._features.push(samples))

    def finish(self) -> np.ndarray:
        """Return every remaining row of the clip pushed since the last reset, then reset."""
        rows = self._run(self._features.finish(extra_frames=self.model.delay_frames))
        self.reset()
        return rows

    def _run(self, features: np.ndarray) -> np.ndarray:
        a = self.model.arrays
        delay = self.model.delay_frames
        out = []
        for row in features:
            x = np.maximum(a["w_in_folded"] @ np.concatenate([row, self._previous]) + a["b_in_folded"], 0.0)
            self._previous = row
            self._h = self.model._gru(a["w_ih"] @ x + a["b_ih"], self._h)
            self._steps += 1
            if self._steps > delay:
                out.append(a["w_out"] @ self._h + a["b_out"])
        return _softmax(np.array(out, np.float32)) if out else np.zeros((0, N_VISEMES), np.float32)


@functools.cache
def load_model() -> VisemeModel:
    """The shipped model, read once per process (engines call it in prewarm)."""
    return VisemeModel.load()
