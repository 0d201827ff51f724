"""TensorRT for the learned graphs: availability probe and engine-cache keys (the build runs elsewhere).

TensorRT is the best backend where it exists (the production GPU image), but it is not installable
on the machines this code is developed and tested on (NVIDIA's PyPI packages are stubs that fetch
wheels from NVIDIA's index), so this module only decides whether TensorRT can be used and names the
plans a build would produce. The engine falls back to ONNX Runtime with the reason logged.

A plan is valid only for the graph file it was parsed from, the TensorRT version that built it, the
GPU architecture (compute capability) it was tuned on and its optimisation profile (min/opt/max
shape of every input); all four are in the key and spelled out in the file name, so an operator can
read a volume listing and a plan is never loaded where it was not built for. Precision follows the
graph's declaration (fp16 with GridSample layers pinned to fp32, as the reference builds them).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass

from farm.render.learned.signatures import BATCH, GraphSpec, concrete_shape

PLAN_SUFFIX = ".plan"


@dataclass(frozen=True, slots=True)
class ShapeProfile:
    """Optimisation profile: (min, opt, max) shape per input."""

    shapes: tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]

    def label(self) -> str:
        batches = sorted({(lo[0], opt[0], hi[0]) for _, lo, opt, hi in self.shapes})
        return "-".join(f"b{lo}.{opt}.{hi}" for lo, opt, hi in batches)


def profile_for(graph: GraphSpec, max_batch: int, opt_batch: int | None = None) -> ShapeProfile:
    """Batch 1..max_batch (opt: ``opt_batch`` or max) on every batched input; other dims fixed."""
    opt = opt_batch or max_batch
    rows = []
    for spec in graph.inputs:
        batched = BATCH in spec.shape
        lo, mid, hi = (concrete_shape(spec, b if batched else 1) for b in (1, opt, max_batch))
        rows.append((spec.name, lo, mid, hi))
    return ShapeProfile(tuple(rows))


@dataclass(frozen=True, slots=True)
class PlanKey:
    """Everything a serialized TensorRT plan depends on."""

    graph: str
    graph_sha256: str  # of the ONNX file it was parsed from
    trt_version: str
    compute_capability: tuple[int, int]
    profile: ShapeProfile
    precision: str

    def filename(self) -> str:
        major, minor = self.compute_capability
        return (
            f"{self.graph}-{self.graph_sha256[:12]}-trt{self.trt_version}-sm{major}{minor}-"
            f"{self.profile.label()}-{self.precision}{PLAN_SUFFIX}"
        )

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def unavailable_reason() -> str | None:
    """Why the TensorRT backend cannot run here (None would mean it can: not in this build)."""
    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt is not installed (NVIDIA's wheels ship in the GPU image, not on PyPI)"
    from farm.render.learned.graphs import cuda_available

    if not cuda_available():
        return "no CUDA device"
    return (
        "the learned graphs' TensorRT build step is not implemented yet (plans would be cached as "
        "PlanKey.filename(); the analytic Expression engine's build_engine shows the pattern)"
    )
