"""The graphs of the learned Expression model, declared as data (STYLE rule 21).

The reference is Ditto (antgroup/ditto-talkinghead, "v0.4 hubert" online set): streaming HuBERT
features → LMDM motion diffusion (80-frame windows of 265 motion dims) → a LivePortrait renderer
(appearance feature volume, implicit keypoints, stitching, 3-D warping, SPADE decoder). Each graph
below states the tensor names, dtypes and shapes its ONNX file must have, the precision the
reference runs it in, and the licence of the published weights. The validator
(``farm.render.learned.validate``) checks an operator's weights directory against exactly these
declarations before a worker reports READY; the tiny test graphs and the full-size random-weight
modules are built to the same declarations.

Dims: an ``int`` must match exactly; ``BATCH`` is the batch axis (the farm batches sessions along
it: symbolic in a graph exported for batching, or fixed at 1 in the published set, which then runs
one item per call); any other string is a free symbolic dim (a length the graph accepts at any
size). The InsightFace detector and landmark graphs of the published set are deliberately absent:
the farm crops faces with its own rig (``farm.render.landmarks``), and InsightFace's models are
licensed for non-commercial research only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

GRAPH_SET = "ditto-v0.4-hubert"  # the published set these declarations follow
GRAPH_SET_VERSION = 1  # bump when a declaration below changes (avatar caches are keyed by it)

BATCH = "batch"
Dim = int | str
DType = Literal["float32", "float16", "int64"]
Precision = Literal["fp16", "fp32"]

# Sizes fixed by the reference (ditto.md §1, §2, §4).
IMAGE_SIZE = 256  # extractor input: the 512 crop resized to 256
RENDER_SIZE = 512  # decoder output
FEATURE_SHAPE = (32, 16, 64, 64)  # appearance feature volume f_s: C, D, H, W
WARPED_SHAPE = (256, 64, 64)  # warp output / decoder input
NUM_KP = 21
POSE_BINS = 66  # pitch, yaw, roll are logits over 66 bins of 3 degrees
MOTION_DIM = 265  # scale 1 | pitch 66 | yaw 66 | roll 66 | t 3 | exp 63
SEQ_FRAMES = 80  # LMDM window (3.2 s at 25 fps)
HUBERT_DIM = 1024
COND_DIM = 1103  # HuBERT 1024 | emotion 8 | eye open 2 | eye ball 6 | source keypoints 63
AUDIO_WINDOW_SAMPLES = 6480  # one streaming HuBERT call: 3 past + 5 current + 2 future frames + 80

LICENCE_LIVEPORTRAIT = (
    "MIT (LivePortrait renderer weights, (c) 2024 Kuaishou Visual Generation and Interaction Center; "
    "KwaiVGI/LivePortrait is tagged MIT). Ditto redistributes them in ditto_onnx/ without a licence "
    "statement of its own: keep the LICENSE of the set you downloaded next to the graphs."
)
LICENCE_DITTO = (
    "NOT STATED upstream: Ditto's code is Apache-2.0 but its weights repository "
    "(digital-avatar/ditto-talkinghead) declares no licence in its card; the operator must supply "
    "the licence under which they obtained the weights (a LICENSE file in the weights directory)."
)
LICENCE_HUBERT = (
    "Apache-2.0 base model (facebook/hubert-large-ls960-ft); Ditto's streaming re-export states no "
    "licence of its own: the operator must confirm it (LICENSE file in the weights directory)."
)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output: its name, element type and shape (``alternatives``: other accepted shapes)."""

    name: str
    dtype: DType
    shape: tuple[Dim, ...]
    alternatives: tuple[tuple[Dim, ...], ...] = ()

    @property
    def shapes(self) -> tuple[tuple[Dim, ...], ...]:
        return (self.shape, *self.alternatives)

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}[{', '.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """One graph of the set: where it is, what it takes and gives, how it runs, under what licence."""

    name: str  # the farm's name for it (also the torch module's name)
    files: tuple[str, ...]  # accepted file names in the weights directory, preferred first
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    precision: Precision  # what the reference runs it in (TensorRT build / torch autocast)
    licence: str
    role: str  # one line: what it does in the pipeline
    batched: bool = True  # False: the graph has no batch axis (one item per call, by design)

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)


def _image_in() -> tuple[TensorSpec, ...]:
    return (TensorSpec("image", "float32", (BATCH, 3, IMAGE_SIZE, IMAGE_SIZE)),)


def _kp(name: str) -> TensorSpec:
    return TensorSpec(name, "float32", (BATCH, NUM_KP, 3))


APPEARANCE = GraphSpec(
    name="appearance_extractor",
    files=("appearance_extractor.onnx",),
    inputs=_image_in(),
    outputs=(TensorSpec("pred", "float32", (BATCH, *FEATURE_SHAPE)),),
    precision="fp16",
    licence=LICENCE_LIVEPORTRAIT,
    role="crop (RGB, [0, 1]) -> appearance feature volume f_s; once per avatar",
)

_FLAT_OR_POINTS = ((BATCH, NUM_KP, 3),)  # the published graph's rank for exp/kp is not documented
MOTION = GraphSpec(
    name="motion_extractor",
    files=("motion_extractor.onnx",),
    inputs=_image_in(),
    outputs=(
        TensorSpec("pitch", "float32", (BATCH, POSE_BINS)),
        TensorSpec("yaw", "float32", (BATCH, POSE_BINS)),
        TensorSpec("roll", "float32", (BATCH, POSE_BINS)),
        TensorSpec("t", "float32", (BATCH, 3)),
        TensorSpec("exp", "float32", (BATCH, NUM_KP * 3), _FLAT_OR_POINTS),
        TensorSpec("scale", "float32", (BATCH, 1)),
        TensorSpec("kp", "float32", (BATCH, NUM_KP * 3), _FLAT_OR_POINTS),
    ),
    precision="fp32",  # the only renderer graph the reference keeps in fp32
    licence=LICENCE_LIVEPORTRAIT,
    role="crop -> head pose bins, translation, expression deltas, scale, canonical keypoints; per avatar",
)

STITCH = GraphSpec(
    name="stitch_network",
    files=("stitch_network.onnx",),
    inputs=(_kp("kp_source"), _kp("kp_driving")),
    outputs=(_kp("out"),),
    precision="fp16",
    licence=LICENCE_LIVEPORTRAIT,
    role="source + driving keypoints -> stitched driving keypoints (the add is inside); per frame",
)

WARP = GraphSpec(
    name="warp_network",
    # warp_network.onnx uses the custom op GridSample3D (a TensorRT plugin); the _ori export uses the
    # standard ONNX GridSample, which ONNX Runtime runs.
    files=("warp_network_ori.onnx", "warp_network.onnx"),
    inputs=(
        TensorSpec("feature_3d", "float32", (BATCH, *FEATURE_SHAPE)),
        _kp("kp_source"),
        _kp("kp_driving"),
    ),
    outputs=(TensorSpec("out", "float32", (BATCH, *WARPED_SHAPE)),),
    precision="fp16",  # grid sampling itself stays fp32
    licence=LICENCE_LIVEPORTRAIT,
    role="f_s warped from source to driving keypoints (3-D dense motion, occlusion) -> 2-D feature",
)

DECODER = GraphSpec(
    name="decoder",
    files=("decoder.onnx",),
    inputs=(TensorSpec("feature", "float32", (BATCH, *WARPED_SHAPE)),),
    outputs=(TensorSpec("output", "float32", (BATCH, 3, RENDER_SIZE, RENDER_SIZE)),),
    precision="fp16",
    licence=LICENCE_LIVEPORTRAIT,
    role="warped feature -> 512x512 RGB in [0, 1] (SPADE generator); per frame",
)

LMDM = GraphSpec(
    name="lmdm",
    files=("lmdm_v0.4_hubert.onnx",),
    inputs=(
        TensorSpec("x", "float32", (BATCH, SEQ_FRAMES, MOTION_DIM)),
        TensorSpec("cond_frame", "float32", (BATCH, MOTION_DIM)),
        TensorSpec("cond", "float32", (BATCH, SEQ_FRAMES, COND_DIM)),
        TensorSpec("time_cond", "int64", (BATCH,)),
    ),
    outputs=(
        TensorSpec("pred_noise", "float32", (BATCH, SEQ_FRAMES, MOTION_DIM)),
        TensorSpec("x_start", "float32", (BATCH, SEQ_FRAMES, MOTION_DIM)),
    ),
    precision="fp32",
    licence=LICENCE_DITTO,
    role="one denoising step (classifier-free guidance inside) of an 80-frame motion window",
)

HUBERT = GraphSpec(
    name="hubert",
    files=("hubert.onnx", "hubert_streaming_fix_kv.onnx"),
    inputs=(TensorSpec("input_values", "float32", (1, "samples")),),
    outputs=(TensorSpec("encoding_out", "float32", ("frames", HUBERT_DIM)),),
    precision="fp32",
    licence=LICENCE_HUBERT,
    role="16 kHz window (6480 samples) -> 50 Hz speech features (20 x 1024); per 5 video frames",
    batched=False,
)

GRAPHS: tuple[GraphSpec, ...] = (APPEARANCE, MOTION, STITCH, WARP, DECODER, LMDM, HUBERT)
GRAPHS_BY_NAME: dict[str, GraphSpec] = {g.name: g for g in GRAPHS}
PER_AVATAR = ("appearance_extractor", "motion_extractor")  # their weights key the avatar cache
PER_FRAME = ("stitch_network", "warp_network", "decoder")
PER_CHUNK = ("hubert", "lmdm")
LICENCE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENSES", "LICENCE")
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})


def concrete_shape(spec: TensorSpec, batch: int, *, samples: int = AUDIO_WINDOW_SAMPLES) -> tuple[int, ...]:
    """``spec.shape`` with the batch axis set to ``batch`` and the audio length to ``samples``."""
    dims: list[int] = []
    for dim in spec.shape:
        if dim == BATCH:
            dims.append(batch)
        elif dim == "samples":
            dims.append(samples)
        elif isinstance(dim, int):
            dims.append(dim)
        else:
            raise ValueError(f"{spec.name}: no concrete size for output-only dim {dim!r}")
    return tuple(dims)


def example_feeds(graph: GraphSpec, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the declared names, dtypes and shapes (warm-ups, exports, smoke checks)."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in graph.inputs:
        shape = concrete_shape(spec, batch)
        if spec.dtype == "int64":
            feeds[spec.name] = rng.integers(0, 1000, size=shape, dtype=np.int64)
        elif spec.name == "image":
            feeds[spec.name] = rng.random(shape, dtype=np.float32)
        else:
            feeds[spec.name] = (rng.standard_normal(shape) * (0.1 if "kp" in spec.name else 1.0)).astype(
                np.dtype(spec.dtype)
            )
    return feeds
