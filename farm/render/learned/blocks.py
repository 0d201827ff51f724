"""Building blocks of the LivePortrait renderer graphs (``nets_lp``), written in-project.

2-D and 3-D conv blocks (conv → BatchNorm → ReLU, with average-pool down or nearest-neighbour up
sampling), the pre-activation 3-D residual block, ConvNeXt-V2's block and global response norm, the
3-D hourglass of the dense-motion network, SPADE normalisation and its residual block, and the two
sampling helpers: a voxel-centre coordinate grid and grid sampling pinned to fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def grid_sample_fp32(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Trilinear/bilinear sampling, zero padding, align_corners=False, always computed in fp32."""
    out = F.grid_sample(
        volume.float(), grid.float(), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out.to(volume.dtype)


class ConvNormAct2d(nn.Sequential):
    """conv (k, same padding) → BatchNorm → ReLU (or LeakyReLU 0.01): LivePortrait's SameBlock2d."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, *, leaky: bool = False) -> None:
        act: nn.Module = nn.LeakyReLU() if leaky else nn.ReLU()
        super().__init__(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm2d(cout), act)


class Down2d(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.AvgPool2d(2))


class ResBlock3d(nn.Module):
    """Pre-activation residual block on a feature volume (BN → ReLU → conv3d, twice, plus the input)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm3d(channels),
            nn.ReLU(),
            nn.Conv3d(channels, channels, 3, padding=1),
            nn.BatchNorm3d(channels),
            nn.ReLU(),
            nn.Conv3d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LayerNormChannels(nn.LayerNorm):
    """LayerNorm over the channel axis of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN on NHWC: scale each channel by its spatial L2 norm relative to the mean norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norms = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
        relative = norms / (norms.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * relative) + self.beta + x


class ConvNeXtBlock(nn.Module):
    """depthwise 7×7 → LN → Linear C→4C → GELU → GRN → Linear 4C→C, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(channels, 4 * channels),
            nn.GELU(),
            GlobalResponseNorm(4 * channels),
            nn.Linear(4 * channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        return x + self.mlp(self.norm(y)).permute(0, 3, 1, 2)


class Down3d(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv3d(cin, cout, kernel, padding=kernel // 2),
            nn.BatchNorm3d(cout),
            nn.ReLU(),
            nn.AvgPool3d((1, 2, 2)),
        )


class Up3d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv3d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm3d(cout), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest"))


class Hourglass3d(nn.Module):
    """U-Net over a volume: depth kept, height and width halved per level, skips concatenated."""

    def __init__(self, cin: int, expansion: int, max_features: int, blocks: int, kernel: int = 3) -> None:
        super().__init__()

        def width(i: int) -> int:
            return min(max_features, expansion * 2**i)

        self.down = nn.ModuleList(
            Down3d(cin if i == 0 else width(i), width(i + 1), kernel) for i in range(blocks)
        )
        self.up = nn.ModuleList(
            Up3d((1 if i == blocks - 1 else 2) * width(i + 1), width(i), kernel)
            for i in reversed(range(blocks))
        )
        self.out_channels = expansion + cin
        self.final = nn.Sequential(
            nn.Conv3d(self.out_channels, self.out_channels, kernel, padding=kernel // 2),
            nn.BatchNorm3d(self.out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for block in self.down:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.up:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return self.final(out)


def coordinate_grid(depth: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(D, H, W, 3) normalised coordinates (x right, y down, z in) at voxel centres, in [-1, 1]."""

    def axis(n: int) -> torch.Tensor:
        return (torch.arange(n, device=like.device, dtype=torch.float32) * 2 + 1) / n - 1

    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


class Spade(nn.Module):
    """Instance norm modulated per pixel by a segmentation map (here: the decoder's own input)."""

    def __init__(self, channels: int, label_channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, kernel, padding=kernel // 2), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, kernel, padding=kernel // 2)
        self.beta = nn.Conv2d(hidden, channels, kernel, padding=kernel // 2)
        self.pointwise = kernel == 1

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        size = (x.shape[2], x.shape[3])
        if self.pointwise:  # a 1×1 conv commutes with nearest upsampling: convolve the small map
            act = F.interpolate(self.shared(segmap), size=size, mode="nearest")
        else:
            act = self.shared(F.interpolate(segmap, size=size, mode="nearest"))
        return self.norm(x) * (1 + self.gamma(act)) + self.beta(act)


class SpadeResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, label_channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        mid = min(cin, cout)
        self.norm_0 = Spade(cin, label_channels, hidden, kernel)
        self.conv_0 = nn.Conv2d(cin, mid, 3, padding=1)
        self.norm_1 = Spade(mid, label_channels, hidden, kernel)
        self.conv_1 = nn.Conv2d(mid, cout, 3, padding=1)
        self.shortcut: nn.Module | None = None
        self.norm_s: Spade | None = None
        if cin != cout:
            self.norm_s = Spade(cin, label_channels, hidden, kernel)
            self.shortcut = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        skip = x
        if self.shortcut is not None and self.norm_s is not None:
            skip = self.shortcut(self.norm_s(x, segmap))
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap), 0.2))
        return skip + dx
