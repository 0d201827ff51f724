"""Per-frame composition of an Essence frame: mouth patches (blended), eye patches, a head nudge.

Everything a frame shows besides its base picture is a small pre-rendered patch of the portrait,
moved to the frame by the base frame's head pose and blended in with a feathered mask:

* ``paste_mouth``: a weighted blend of one or more mouth shapes of the bank (the renderer selects
  them; a single shape with weight 1 is the plain case);
* ``paste_eyes``: one eye state (blink level or gaze) for both eyes;
* ``nudge_head``: a vertical shift of a few pixels of the head (the head-motion weight of the
  build, faded to zero at the neck and shoulders) for speech beats.

``Layers`` holds the placements, precomputed per clip frame once per loaded pack and shared
read-only by every session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from farm.render.essence.pack import EssencePack


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a patch lands in one base frame: destination box and patch -> box matrix."""

    x0: int
    y0: int
    x1: int
    y1: int
    matrix: np.ndarray  # (2, 3) float32


def place(
    pose: np.ndarray, origin: tuple[int, int], patch_hw: tuple[int, int], frame_wh: tuple[int, int]
) -> Placement:
    """The placement of a patch whose top-left is ``origin`` in the portrait, under head ``pose``."""
    width, height = frame_wh
    ph, pw = patch_hw
    to_patch = np.array([[1.0, 0.0, origin[0]], [0.0, 1.0, origin[1]], [0.0, 0.0, 1.0]])
    full = np.asarray(pose, np.float64) @ to_patch  # patch pixel -> frame pixel
    corners = np.array([[0, 0, 1], [pw, 0, 1], [0, ph, 1], [pw, ph, 1]], np.float64) @ full.T
    x0 = int(max(0, np.floor(corners[:, 0].min())))
    y0 = int(max(0, np.floor(corners[:, 1].min())))
    x1 = int(min(width, np.ceil(corners[:, 0].max()) + 1))
    y1 = int(min(height, np.ceil(corners[:, 1].max()) + 1))
    matrix = full.copy()
    matrix[:, 2] -= (x0, y0)
    return Placement(x0, y0, x1, y1, matrix.astype(np.float32))


def blend_patch(image: np.ndarray, patch: np.ndarray, mask: np.ndarray, where: Placement) -> None:
    """Warp ``patch`` and ``mask`` to ``where`` and blend into ``image`` in place."""
    size = (where.x1 - where.x0, where.y1 - where.y0)
    if size[0] <= 0 or size[1] <= 0:
        return
    warped = cv2.warpAffine(patch, where.matrix, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(mask, where.matrix, size, flags=cv2.INTER_LINEAR)
    roi = image[where.y0 : where.y1, where.x0 : where.x1]
    roi[...] = cv2.blendLinear(warped, np.ascontiguousarray(roi), alpha, 1.0 - alpha)


class Layers:
    """The placements of mouth and eye patches in every base frame of a pack, and the head nudge."""

    def __init__(self, pack: EssencePack) -> None:
        frame_wh = pack.frame_size
        mouth_hw = (int(pack.mask.shape[0]), int(pack.mask.shape[1]))
        self.mouth = {
            clip: [place(m, pack.mouth_origin, mouth_hw, frame_wh) for m in pack.poses[clip]]
            for clip in pack.frames
        }
        self.mouth_mask = np.ascontiguousarray(pack.mask, dtype=np.float32)
        self.eye_mask = np.ascontiguousarray(pack.eye_mask, dtype=np.float32)
        eye_hw = (int(self.eye_mask.shape[0]), int(self.eye_mask.shape[1]))
        self.eyes = {
            clip: [
                [place(m, origin, eye_hw, frame_wh) for origin in pack.eye_origins] for m in pack.poses[clip]
            ]
            for clip in pack.frames
        }
        x0, y0, x1, y1 = pack.head_box
        self.head_box = (x0, y0, x1, y1)
        self.head_mask = np.ascontiguousarray(pack.head_mask, dtype=np.float32)
        self.head_rest = np.ascontiguousarray(1.0 - self.head_mask)


def paste_mouth(
    image: np.ndarray,
    pack: EssencePack,
    layers: Layers,
    frame: tuple[str, int, int],
    blend: Sequence[tuple[int, float]],
) -> None:
    """Blend the weighted mix of mouth shapes ``blend`` [(shape index, weight), ...] into ``image``.

    ``frame`` is (clip, position in the clip, smile level index) of the base frame. Weights are
    normalised; a lone shape is pasted as it is (no float blend of patches).
    """
    clip, pos, level = frame
    weights = [(s, w) for s, w in blend if w > 0.0]
    if not weights:
        return
    if len(weights) == 1:
        patch = np.asarray(pack.patches[level, weights[0][0]])
    else:
        total = sum(w for _, w in weights)
        mixed = sum(np.asarray(pack.patches[level, s], np.float32) * (w / total) for s, w in weights)
        patch = np.clip(np.asarray(mixed) + 0.5, 0, 255).astype(np.uint8)
    blend_patch(image, patch, layers.mouth_mask, layers.mouth[clip][pos])


def paste_eyes(
    image: np.ndarray, pack: EssencePack, layers: Layers, frame: tuple[str, int], state: int
) -> None:
    """Blend eye state ``state`` (index into ``pack.eye_states``; 0 = the base frame's own eyes)."""
    if state <= 0:
        return
    clip, pos = frame
    for eye, where in enumerate(layers.eyes[clip][pos]):
        blend_patch(image, np.asarray(pack.eye_patches[eye, state]), layers.eye_mask, where)


def nudge_head(image: np.ndarray, layers: Layers, dy: float) -> None:
    """Move the head down by ``dy`` pixels (sub-pixel), fading out at the neck; in place."""
    if abs(dy) < 0.05:
        return
    x0, y0, x1, y1 = layers.head_box
    roi = image[y0:y1, x0:x1]
    shift = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, dy]], np.float32)
    moved = cv2.warpAffine(
        roi, shift, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    roi[...] = cv2.blendLinear(moved, np.ascontiguousarray(roi), layers.head_mask, layers.head_rest)
