"""BlazeFace face detection (MediaPipe's short- and full-range models) on whole images and tiles.

Pre- and post-processing follow ``mediapipe/modules/face_detection/face_detection.pbtxt`` and the
per-model ``face_detection_{short,full}_range.pbtxt``: the ROI (the whole image by default) is
letterboxed to a square, scaled to the model's input and to [-1, 1]; SSD anchors with fixed size;
box and keypoint offsets decoded against the anchor centres; sigmoid scores over a threshold;
MediaPipe's WEIGHTED non-max suppression; projection back to image pixels.

Small faces: the short-range model needs a face of about 15 % of the frame's long side, the
full-range one about 6 %. ``detect_tiled`` runs the full-range model on overlapping tiles, which
is the crop-and-upscale step for a small face in a large (full-body) photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from farm.render.facerig.geometry import RotatedRect, apply_affine, warp_to_tensor
from farm.render.facerig.loader import TfliteModel

NUM_KEYPOINTS = 6
SCORE_CLIP = 100.0
NMS_IOU = 0.3


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """One BlazeFace model's graph constants."""

    model_file: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    min_score: float
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)


SHORT_RANGE = DetectorConfig("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 0.5)
FULL_RANGE = DetectorConfig("face_detection_full_range_sparse.tflite", 192, (4,), 0.0, 0.6)


@dataclass(frozen=True, slots=True)
class Detection:
    """A face in image pixels: box (x0, y0, x1, y1), score, and six keypoints (6, 2).

    Keypoints (MediaPipe's order): subject's right eye (the image's left), left eye, nose tip, mouth
    centre, right ear tragion, left ear tragion.
    """

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def anchor_centres(cfg: DetectorConfig) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1], as MediaPipe's SsdAnchorsCalculator lays them out.

    Both face models set ``fixed_anchor_size``, so only centres matter. Consecutive layers with the
    same stride share one grid; each adds ``len(aspect_ratios)`` anchors per cell, plus one
    interpolated anchor when that ratio is positive. Cells run row-major.
    """
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(cfg.strides):
        stride = cfg.strides[layer]
        per_cell = 0
        while layer < len(cfg.strides) and cfg.strides[layer] == stride:
            per_cell += len(cfg.aspect_ratios) + (1 if cfg.interpolated_scale_aspect_ratio > 0.0 else 0)
            layer += 1
        grid = math.ceil(cfg.input_size / stride)
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cell = np.stack([(xs + cfg.anchor_offset) / grid, (ys + cfg.anchor_offset) / grid], axis=-1)
        centres.append(np.repeat(cell.reshape(-1, 2), per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's WEIGHTED non-max suppression.

    Takes the best remaining detection, gathers every remaining one overlapping it by IoU above the
    threshold (itself included), and replaces box corners and keypoints by the cluster's
    score-weighted mean; the score stays the best one's. Repeats until none remain.
    """
    order = np.argsort(-scores, kind="stable")
    merged: list[tuple[np.ndarray, np.ndarray, float]] = []
    while order.size:
        best = order[0]
        overlap = _iou(boxes[best], boxes[order]) > iou_threshold
        cluster = order[overlap]
        w = scores[cluster][:, None]
        box = (boxes[cluster] * w).sum(axis=0) / w.sum()
        kps = (keypoints[cluster] * w[:, :, None]).sum(axis=0) / w.sum()
        merged.append((box, kps, float(scores[best])))
        order = order[~overlap]
    return merged


class FaceDetector:
    """One BlazeFace model with its anchors."""

    def __init__(self, cfg: DetectorConfig, *, num_threads: int = 1) -> None:
        self.cfg = cfg
        self._model = TfliteModel(cfg.model_file, num_threads=num_threads)
        self._anchors = anchor_centres(cfg)

    def detect(
        self, image: np.ndarray, roi: RotatedRect | None = None, min_score: float | None = None
    ) -> list[Detection]:
        """Faces in an RGB uint8 image, or inside ``roi`` of it (letterboxed with black)."""
        h, w = image.shape[:2]
        roi = roi or RotatedRect(w / 2.0, h / 2.0, float(w), float(h))
        side = max(roi.width, roi.height)
        size = self.cfg.input_size
        square = RotatedRect(roi.cx, roi.cy, side, side, roi.angle)
        tensor, m = warp_to_tensor(image, square, size, (-1.0, 1.0), border=cv2.BORDER_CONSTANT)
        outputs = self._model(tensor)
        # the two models list their outputs in different orders: pick them by shape
        raw = next(o for o in outputs if o.shape[-1] == 4 + 2 * NUM_KEYPOINTS)[0]
        logits = next(o for o in outputs if o.shape[-1] == 1)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
        keep = scores >= (self.cfg.min_score if min_score is None else min_score)
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        centre = raw[:, 0:2] / size + anchors  # layout x, y, w, h, then keypoint (x, y) pairs
        half = raw[:, 2:4] / size / 2.0
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) / size + anchors[:, None, :]
        found = []
        for box, kp, score in weighted_nms(boxes, kps, scores):
            corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]])
            px = apply_affine(m, corners * size)
            lo, hi = px.min(axis=0), px.max(axis=0)
            box_px = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
            found.append(Detection(box_px, apply_affine(m, kp * size).astype(np.float32), score))
        return found


def tile_origins(length: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels every ``step`` that cover ``length`` pixels."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, step), length - tile]


def detect_tiled(
    detector: FaceDetector, image: np.ndarray, tile: int, overlap: float = 0.5
) -> list[Detection]:
    """The detector on overlapping square tiles, merged with the same weighted NMS (pixel units).

    With ``overlap`` 0.5 every face smaller than half a tile lies wholly inside some tile, where it
    is ``image side / tile`` times larger relative to the model's input than in the whole frame.
    """
    h, w = image.shape[:2]
    step = max(1, int(tile * (1.0 - overlap)))
    found: list[Detection] = []
    for y in tile_origins(h, tile, step):
        for x in tile_origins(w, tile, step):
            tw, th = min(tile, w), min(tile, h)
            found.extend(
                detector.detect(image, RotatedRect(x + tw / 2.0, y + th / 2.0, float(tw), float(th)))
            )
    if not found:
        return []
    boxes = np.array([d.box for d in found], dtype=np.float64)
    kps = np.stack([d.keypoints for d in found]).astype(np.float64)
    scores = np.array([d.score for d in found], dtype=np.float64)
    return [
        Detection((float(b[0]), float(b[1]), float(b[2]), float(b[3])), k.astype(np.float32), s)
        for b, k, s in weighted_nms(boxes, kps, scores)
    ]
