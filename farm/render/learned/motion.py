"""Motion vectors of the learned model and how a generated one becomes driving keypoints.

A motion vector has 265 dims in the reference's order: scale (stored as scale − 1), pitch, yaw and
roll as 66 bin logits each, translation (3), expression deltas (21 × 3). The motion extractor
gives the source face's own vector (``SourceMotion``); the diffusion model generates one per frame.
Driving follows the reference's relative mode for a still image: each generated frame moves the
source by its difference from the first generated frame (pose logits, translation, expression;
the source's scale is kept), and only the lip and eye keypoints take the driven expression, the
rest keep the source's. Gestures add head-pose offsets in degrees on top (a nod, a tilt).

Everything here is small numpy work per session per frame; nothing touches a graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from farm.render.learned.geometry import transform_keypoints
from farm.render.learned.signatures import MOTION_DIM, NUM_KP, POSE_BINS

SCALE = slice(0, 1)
PITCH = slice(1, 1 + POSE_BINS)
YAW = slice(1 + POSE_BINS, 1 + 2 * POSE_BINS)
ROLL = slice(1 + 2 * POSE_BINS, 1 + 3 * POSE_BINS)
TRANSLATION = slice(1 + 3 * POSE_BINS, 4 + 3 * POSE_BINS)
EXPRESSION = slice(4 + 3 * POSE_BINS, MOTION_DIM)
LIP_KEYPOINTS = (6, 12, 14, 17, 19, 20)
EYE_KEYPOINTS = (11, 13, 15, 16, 18)
DRIVEN_KEYPOINTS = LIP_KEYPOINTS + EYE_KEYPOINTS

EMOTIONS = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise", "Contempt")
NEUTRAL = EMOTIONS.index("Neutral")


def bins_to_degrees(logits: np.ndarray) -> np.ndarray:
    """Expected angle of 66 bins of 3° centred on 0: softmax · index · 3 − 97.5 (last axis)."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    prob = z / z.sum(axis=-1, keepdims=True)
    return (prob @ np.arange(POSE_BINS, dtype=np.float64)) * 3.0 - 97.5


def emotion_vector(label: int = NEUTRAL) -> np.ndarray:
    """The reference's soft one-hot: softmax of a vector with 8 at ``label`` (≈ 0.997 there)."""
    z = np.zeros(len(EMOTIONS))
    z[label] = 8.0
    e = np.exp(z - z.max())
    return (e / e.sum()).astype(np.float32)


@dataclass(frozen=True, slots=True)
class SourceMotion:
    """The motion extractor's reading of the source face (one avatar)."""

    pitch: np.ndarray  # (66,) bin logits
    yaw: np.ndarray
    roll: np.ndarray
    t: np.ndarray  # (3,)
    exp: np.ndarray  # (21, 3)
    scale: float
    kp: np.ndarray  # (21, 3) canonical keypoints

    @classmethod
    def from_outputs(cls, outputs: dict[str, np.ndarray]) -> SourceMotion:
        """From the motion_extractor graph's outputs for one image (any accepted rank of exp/kp)."""

        def one(name: str) -> np.ndarray:
            return np.asarray(outputs[name], np.float32).reshape(-1)

        return cls(
            pitch=one("pitch"),
            yaw=one("yaw"),
            roll=one("roll"),
            t=one("t"),
            exp=one("exp").reshape(NUM_KP, 3),
            scale=float(one("scale")[0]),
            kp=one("kp").reshape(NUM_KP, 3),
        )

    def vector(self) -> np.ndarray:
        """The 265-dim motion vector of the source (the diffusion model's first conditioning frame)."""
        parts = [np.array([self.scale - 1.0]), self.pitch, self.yaw, self.roll, self.t, self.exp.reshape(-1)]
        return np.concatenate(parts).astype(np.float32)

    def keypoints(self) -> np.ndarray:
        """x_s: the source's transformed keypoints (21, 3)."""
        p, y, r = (float(bins_to_degrees(a)) for a in (self.pitch, self.yaw, self.roll))
        return transform_keypoints(self.kp, (p, y, r), self.t, self.exp, self.scale)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "pitch": self.pitch,
            "yaw": self.yaw,
            "roll": self.roll,
            "t": self.t,
            "exp": self.exp,
            "scale": np.array([self.scale], np.float32),
            "kp": self.kp,
        }


def driving_keypoints(
    source: SourceMotion, motion: np.ndarray, first: np.ndarray, pose_offset_deg: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """(x_d (21, 3), mouth opening 0..1) for generated ``motion`` relative to the ``first`` frame."""
    delta = np.asarray(motion, np.float64) - np.asarray(first, np.float64)
    pitch = float(bins_to_degrees(source.pitch + delta[PITCH]))
    yaw = float(bins_to_degrees(source.yaw + delta[YAW]))
    roll = float(bins_to_degrees(source.roll + delta[ROLL]))
    if pose_offset_deg is not None:
        pitch, yaw, roll = pitch + pose_offset_deg[0], yaw + pose_offset_deg[1], roll + pose_offset_deg[2]
    exp_delta = delta[EXPRESSION].reshape(NUM_KP, 3)
    exp = source.exp.astype(np.float64).copy()
    exp[list(DRIVEN_KEYPOINTS)] += exp_delta[list(DRIVEN_KEYPOINTS)]
    t = source.t + delta[TRANSLATION]
    x_d = transform_keypoints(source.kp, (pitch, yaw, roll), t, exp, source.scale)
    lips = exp_delta[list(LIP_KEYPOINTS)]
    opening = float(np.clip(np.sqrt((lips**2).sum(-1)).mean() / 0.05, 0.0, 1.0))
    return x_d, opening


def blend_into(previous: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """Continue a motion chunk from the last frame shown: the first frames take a fading share of the
    gap between ``previous`` and the chunk's first frame, so a new window never jumps."""
    gap = np.asarray(previous, np.float32) - chunk[0]
    weights = 1.0 - np.arange(1, chunk.shape[0] + 1, dtype=np.float32) / (chunk.shape[0] + 1)
    return (chunk + weights[:, None] * gap[None, :]).astype(np.float32)


# ------------------------------------------------------------------ gestures
def _bump(progress: float) -> float:
    return float(np.sin(np.pi * np.clip(progress, 0.0, 1.0)) ** 2)


@dataclass(frozen=True, slots=True)
class Gesture:
    """A head-pose offset over time: peak (pitch, yaw, roll) degrees and how the curve goes."""

    name: str
    duration_s: float
    peak_deg: tuple[float, float, float]
    cycles: int = 1  # full oscillations (a nod dips twice)

    def offset(self, progress: float) -> np.ndarray:
        shape = np.sin(np.pi * self.cycles * progress) if self.cycles > 1 else _bump(progress)
        return np.asarray(self.peak_deg, np.float64) * float(shape)


GESTURE_SET: dict[str, Gesture] = {
    g.name: g
    for g in (
        Gesture("talk_head_nod_subtle", 1.2, (6.0, 0.0, 0.0), cycles=2),
        Gesture("head_tilt", 2.0, (0.0, 0.0, 9.0)),
    )
}
GESTURES: tuple[str, ...] = tuple(GESTURE_SET)
