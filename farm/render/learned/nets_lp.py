"""The LivePortrait renderer graphs as torch modules, written in-project from the published architecture.

Five graphs (names as in ``signatures``): appearance extractor (2-D encoder lifted into a 3-D feature
volume), motion extractor (ConvNeXt-V2-tiny with pose/expression heads), stitching MLP, warping
network (3-D dense motion over 21 implicit keypoints, 3-D grid sampling, occlusion) and SPADE
decoder. ``RendererArch`` holds every width and depth: ``RendererArch()`` is the published size
(parameter counts checked in ``fullsize.py`` against LivePortrait's published figures) and
``RendererArch.tiny()`` keeps every tensor that crosses a graph boundary at its reference shape
while shrinking what is inside, so tests run the same code on CPU in milliseconds. Weights are
random: these modules exist to measure throughput and to produce signature-exact test graphs, not
to render a face.

Precision: grid sampling always runs in fp32 (the reference pins its GridSample layers to fp32 in
fp16 TensorRT builds); every other layer runs in the dtype of the module's parameters.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from farm.render.learned.blocks import (
    ConvNeXtBlock,
    ConvNormAct2d,
    Down2d,
    Hourglass3d,
    LayerNormChannels,
    ResBlock3d,
    SpadeResBlock,
    coordinate_grid,
    grid_sample_fp32,
)
from farm.render.learned.signatures import FEATURE_SHAPE, NUM_KP, POSE_BINS, WARPED_SHAPE


@dataclass(frozen=True, slots=True)
class RendererArch:
    """Widths and depths of the five renderer graphs (defaults: the published model)."""

    app_expansion: int = 64
    app_down_blocks: int = 2
    app_resblocks: int = 6
    me_dims: tuple[int, ...] = (96, 192, 384, 768)
    me_depths: tuple[int, ...] = (3, 3, 9, 3)
    dm_expansion: int = 32
    dm_max_features: int = 1024
    dm_blocks: int = 5
    dm_compress: int = 4
    dm_mask_kernel: int = 7
    dm_occlusion_kernel: int = 7
    dm_kernel: int = 3  # every conv of the dense-motion hourglass
    warp_hidden: int = 256
    warp_kernel: int = 3
    dec_features: int = 512
    dec_middle_blocks: int = 6
    dec_up: tuple[int, int] = (256, 64)
    spade_hidden: int = 128
    spade_kernel: int = 3
    stitch_hidden: tuple[int, ...] = (128, 128, 64)

    @classmethod
    def tiny(cls) -> RendererArch:
        """Reference shapes at every graph boundary, a few channels inside (tests, CPU smoke)."""
        return cls(
            app_expansion=4,
            app_resblocks=0,
            me_dims=(8, 8, 16, 16),
            me_depths=(1, 1, 1, 1),
            dm_expansion=4,
            dm_max_features=8,
            dm_blocks=2,
            dm_compress=1,
            dm_mask_kernel=1,
            dm_occlusion_kernel=1,
            dm_kernel=1,
            warp_hidden=8,
            warp_kernel=1,
            dec_features=8,
            dec_middle_blocks=1,
            dec_up=(8, 4),
            spade_hidden=4,
            spade_kernel=1,
            stitch_hidden=(16,),
        )


class AppearanceExtractor(nn.Module):
    """(B, 3, 256, 256) crop in [0, 1] → (B, 32, 16, 64, 64) appearance feature volume."""

    def __init__(self, arch: RendererArch) -> None:
        super().__init__()
        channels = [arch.app_expansion * 2**i for i in range(arch.app_down_blocks + 1)]
        self.first = ConvNormAct2d(3, channels[0])
        self.down = nn.Sequential(*(Down2d(a, b) for a, b in itertools.pairwise(channels)))
        depth_channels = FEATURE_SHAPE[0] * FEATURE_SHAPE[1]
        self.lift = nn.Conv2d(channels[-1], depth_channels, 1)
        self.volume = nn.Sequential(*(ResBlock3d(FEATURE_SHAPE[0]) for _ in range(arch.app_resblocks)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.lift(self.down(self.first(image)))
        x = x.view(x.shape[0], *FEATURE_SHAPE)  # constants, so exported graphs keep static dims
        return self.volume(x)


MOTION_HEADS = (("pitch", POSE_BINS), ("yaw", POSE_BINS), ("roll", POSE_BINS), ("t", 3))
MOTION_HEADS_FLAT = (("exp", NUM_KP * 3), ("scale", 1), ("kp", NUM_KP * 3))


class MotionExtractor(nn.Module):
    """(B, 3, 256, 256) → pitch, yaw, roll (66 bin logits each), t (3), exp (63), scale (1), kp (63)."""

    def __init__(self, arch: RendererArch) -> None:
        super().__init__()
        dims = arch.me_dims
        layers: list[nn.Module] = [nn.Conv2d(3, dims[0], 4, stride=4), LayerNormChannels(dims[0], eps=1e-6)]
        for i, depth in enumerate(arch.me_depths):
            if i > 0:
                layers += [
                    LayerNormChannels(dims[i - 1], eps=1e-6),
                    nn.Conv2d(dims[i - 1], dims[i], 2, stride=2),
                ]
            layers += [ConvNeXtBlock(dims[i]) for _ in range(depth)]
        self.backbone = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(dims[-1], n) for name, n in MOTION_HEADS + MOTION_HEADS_FLAT}
        )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pooled = self.norm(self.backbone(image).mean(dim=(-2, -1)))
        order = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")
        return tuple(self.heads[name](pooled) for name in order)


class StitchingNetwork(nn.Module):
    """MLP on (source, driving) keypoints → driving keypoints with a learned correction added."""

    def __init__(self, arch: RendererArch) -> None:
        super().__init__()
        sizes = (2 * NUM_KP * 3, *arch.stitch_hidden)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], NUM_KP * 3 + 2))
        self.mlp = nn.Sequential(*layers)

    def forward(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        batch = kp_source.shape[0]
        delta = self.mlp(torch.cat([kp_source.reshape(batch, -1), kp_driving.reshape(batch, -1)], dim=1))
        moved = kp_driving + delta[:, : NUM_KP * 3].view(batch, NUM_KP, 3)
        shift = torch.cat([delta[:, NUM_KP * 3 :], torch.zeros_like(delta[:, :1])], dim=1)
        return moved + shift.view(batch, 1, 3)


class DenseMotion(nn.Module):
    """Per-voxel deformation (mixture of 21 keypoint-local translations and the identity) and occlusion."""

    def __init__(self, arch: RendererArch) -> None:
        super().__init__()
        channels, depth = FEATURE_SHAPE[0], FEATURE_SHAPE[1]
        self.compress = nn.Sequential(
            nn.Conv3d(channels, arch.dm_compress, 1), nn.BatchNorm3d(arch.dm_compress), nn.ReLU()
        )
        cin = (NUM_KP + 1) * (arch.dm_compress + 1)
        self.hourglass = Hourglass3d(
            cin, arch.dm_expansion, arch.dm_max_features, arch.dm_blocks, arch.dm_kernel
        )
        out = self.hourglass.out_channels
        self.mask = nn.Conv3d(out, NUM_KP + 1, arch.dm_mask_kernel, padding=arch.dm_mask_kernel // 2)
        k = arch.dm_occlusion_kernel
        self.occlusion = nn.Conv2d(out * depth, 1, k, padding=k // 2)

    def forward(
        self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = feature.shape[0]
        _, depth, height, width = FEATURE_SHAPE
        grid = coordinate_grid(depth, height, width, feature)  # (D, H, W, 3)
        kd = kp_driving.float().view(batch, NUM_KP, 1, 1, 1, 3)
        ks = kp_source.float().view(batch, NUM_KP, 1, 1, 1, 3)
        local = grid - kd + ks  # (B, K, D, H, W, 3)
        identity = grid.expand(batch, 1, depth, height, width, 3)
        motions = torch.cat([identity, local], dim=1)  # (B, K+1, D, H, W, 3)
        heat = torch.exp(-0.5 * ((grid - kd) ** 2).sum(-1) / 0.01) - torch.exp(
            -0.5 * ((grid - ks) ** 2).sum(-1) / 0.01
        )
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2)  # (B, K+1, 1, D, H, W)
        small = self.compress(feature)
        c = small.shape[1]
        repeated = small.unsqueeze(1).expand(batch, NUM_KP + 1, c, depth, height, width)
        sampled = grid_sample_fp32(
            repeated.reshape(batch * (NUM_KP + 1), c, depth, height, width),
            motions.reshape(batch * (NUM_KP + 1), depth, height, width, 3),
        ).view(batch, NUM_KP + 1, c, depth, height, width)
        stacked = torch.cat([heat.to(sampled.dtype), sampled], dim=2).view(batch, -1, depth, height, width)
        prediction = self.hourglass(stacked)
        mask = torch.softmax(self.mask(prediction).float(), dim=1).unsqueeze(-1)  # (B, K+1, D, H, W, 1)
        deformation = (mask * motions).sum(dim=1)  # (B, D, H, W, 3)
        flat = prediction.reshape(batch, -1, height, width)
        occlusion = torch.sigmoid(self.occlusion(flat))
        return deformation, occlusion


class WarpingNetwork(nn.Module):
    """(f_s, source kp, driving kp) → (B, 256, 64, 64) warped feature, occlusion applied."""

    def __init__(self, arch: RendererArch) -> None:
        super().__init__()
        self.dense_motion = DenseMotion(arch)
        flat = FEATURE_SHAPE[0] * FEATURE_SHAPE[1]
        self.third = ConvNormAct2d(flat, arch.warp_hidden, arch.warp_kernel, leaky=True)
        self.fourth = nn.Conv2d(arch.warp_hidden, WARPED_SHAPE[0], 1)

    def forward(
        self, feature_3d: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> torch.Tensor:
        deformation, occlusion = self.dense_motion(feature_3d, kp_driving, kp_source)
        warped = grid_sample_fp32(feature_3d, deformation)
        channels, depth, height, width = FEATURE_SHAPE
        out = self.fourth(self.third(warped.view(warped.shape[0], channels * depth, height, width)))
        return out * occlusion.to(out.dtype)


class SpadeDecoder(nn.Module):
    """(B, 256, 64, 64) warped feature → (B, 3, 512, 512) RGB in [0, 1]."""

    def __init__(self, arch: RendererArch) -> None:
        super().__init__()
        label = WARPED_SHAPE[0]
        feats, (up0, up1) = arch.dec_features, arch.dec_up
        block = {"label_channels": label, "hidden": arch.spade_hidden, "kernel": arch.spade_kernel}
        self.fc = nn.Conv2d(label, feats, 3, padding=1)
        self.middle = nn.ModuleList(
            SpadeResBlock(feats, feats, **block) for _ in range(arch.dec_middle_blocks)
        )
        self.up_0 = SpadeResBlock(feats, up0, **block)
        self.up_1 = SpadeResBlock(up0, up1, **block)
        self.to_rgb = nn.Conv2d(up1, 3 * 4, 3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        for block in self.middle:
            x = block(x, feature)
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), feature)
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), feature)
        x = F.pixel_shuffle(self.to_rgb(F.leaky_relu(x, 0.2)), 2)
        return torch.sigmoid(x)
