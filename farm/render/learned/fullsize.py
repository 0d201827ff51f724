"""Build the seven graphs as torch modules with random weights, at the published size or the test size.

``build_modules(FULL)`` gives modules with the reference architectures and parameter counts (checked
against the published figures by ``parameter_report``), for throughput measurements on a GPU where
no real weights exist; ``build_modules(TINY)`` gives the same graphs with the same boundary shapes
and a few channels inside, for CPU tests and the smoke benchmark. Nothing here loads or ships
weights, so no licence applies to these modules (their random weights are generated here).

Counting uses the meta device, so ``parameter_report(FULL)`` allocates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from farm.render.learned.nets_audio import HubertArch, LmdmArch, MotionDiffusion, SpeechEncoder
from farm.render.learned.nets_lp import (
    AppearanceExtractor,
    MotionExtractor,
    RendererArch,
    SpadeDecoder,
    StitchingNetwork,
    WarpingNetwork,
)


@dataclass(frozen=True, slots=True)
class ModelSet:
    """Architectures of the whole set."""

    name: str
    renderer: RendererArch
    lmdm: LmdmArch
    hubert: HubertArch


FULL = ModelSet("full", RendererArch(), LmdmArch(), HubertArch())
TINY = ModelSet("tiny", RendererArch.tiny(), LmdmArch.tiny(), HubertArch.tiny())
PRESETS = {FULL.name: FULL, TINY.name: TINY}

# Published sizes (trainable parameters). LivePortrait's assets/docs/speed.md gives millions with two
# decimals for the renderer; the stitching MLP is the 126-128-128-64-65 network alone (LivePortrait's
# 0.23 M also counts its lip and eye retargeting MLPs, which Ditto does not run). LMDM: Ditto's .pth is
# 191 MB of fp32 (47.79 M counted from its architecture). HuBERT-large: the 1.26 GB fp32 checkpoint of
# facebook/hubert-large-ls960-ft (≈ 315 M; its CTC head is not part of the feature graph).
PUBLISHED: dict[str, tuple[float, str]] = {
    "appearance_extractor": (0.84e6, "LivePortrait speed.md: 0.84 M"),
    "motion_extractor": (28.12e6, "LivePortrait speed.md: 28.12 M"),
    "warp_network": (45.53e6, "LivePortrait speed.md: 45.53 M"),
    "decoder": (55.37e6, "LivePortrait speed.md: 55.37 M"),
    "stitch_network": (45_249, "126-128-128-64-65 MLP (LivePortrait models.yaml)"),
    "lmdm": (47.79e6, "Ditto lmdm_v0.4_hubert.pth, 191 MB fp32"),
    "hubert": (315e6, "hubert-large-ls960-ft, 1.26 GB fp32"),
}


def _construct(preset: ModelSet) -> dict[str, nn.Module]:
    r = preset.renderer
    return {
        "appearance_extractor": AppearanceExtractor(r),
        "motion_extractor": MotionExtractor(r),
        "stitch_network": StitchingNetwork(r),
        "warp_network": WarpingNetwork(r),
        "decoder": SpadeDecoder(r),
        "lmdm": MotionDiffusion(preset.lmdm),
        "hubert": SpeechEncoder(preset.hubert),
    }


def build_modules(
    preset: ModelSet,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    names: tuple[str, ...] | None = None,
) -> dict[str, nn.Module]:
    """The graphs of ``preset`` (all, or ``names``) with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    modules = _construct(preset)
    return {
        name: module.to(device).eval() for name, module in modules.items() if names is None or name in names
    }


def parameter_counts(preset: ModelSet) -> dict[str, int]:
    """Trainable parameters per graph (BatchNorm running statistics and buffers excluded)."""
    with torch.device("meta"):
        modules = _construct(preset)
    return {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}


def parameter_report(preset: ModelSet = FULL) -> list[dict[str, Any]]:
    """Each graph's parameter count beside the published one and their relative difference."""
    rows = []
    for name, count in parameter_counts(preset).items():
        published, source = PUBLISHED[name]
        rows.append(
            {
                "graph": name,
                "params": count,
                "published": published,
                "source": source,
                "relative_diff": round(abs(count - published) / published, 5),
            }
        )
    return rows
