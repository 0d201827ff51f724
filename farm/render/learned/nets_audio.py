"""The audio side of the learned model as torch modules, written in-project from the published designs.

* ``MotionDiffusion`` — the ``lmdm`` graph: a transformer denoiser over an 80-frame window of 265
  motion dims (Ditto's LMDM: latent 512, 8 FiLM decoder layers with self- and cross-attention and
  rotary positions, a 2-layer condition encoder, a sinusoidal time MLP that also yields two memory
  tokens). ``forward`` is one denoising step with classifier-free guidance inside (the unconditioned
  and the conditioned pass run as one batch of 2B), returning (pred_noise, x_start) like the graph.
* ``SpeechEncoder`` — the ``hubert`` graph: HuBERT-large's layout (7-layer conv front end, 320×
  down-sampling to 50 Hz, convolutional positions, 24 pre-norm transformer layers of width 1024).

``…Arch()`` is the published size, ``…Arch.tiny()`` the test size with identical boundary shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from farm.render.learned.diffusion import alphas_cumprod
from farm.render.learned.signatures import COND_DIM, HUBERT_DIM, MOTION_DIM, SEQ_FRAMES


@dataclass(frozen=True, slots=True)
class LmdmArch:
    latent: int = 512
    ff: int = 1024
    layers: int = 8
    heads: int = 8
    cond_layers: int = 2
    guidance: float = 2.0

    @classmethod
    def tiny(cls) -> LmdmArch:
        return cls(latent=16, ff=32, layers=1, heads=2, cond_layers=1)


@dataclass(frozen=True, slots=True)
class HubertArch:
    conv_channels: int = 512
    conv_kernels: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_strides: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    hidden: int = 1024
    layers: int = 24
    heads: int = 16
    ff: int = 4096
    pos_kernel: int = 128
    pos_groups: int = 16

    @classmethod
    def tiny(cls) -> HubertArch:
        return cls(conv_channels=8, hidden=16, layers=1, heads=2, ff=32, pos_kernel=4, pos_groups=2)


class Rotary(nn.Module):
    """Rotary position embedding over the full model width, adjacent pairs of dims rotated together."""

    freqs: torch.Tensor

    def __init__(self, dim: int, theta: float = 10_000.0) -> None:
        super().__init__()
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[1], device=x.device, dtype=torch.float32)
        angles = positions[:, None] * self.freqs[None, :]  # (L, D/2)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


class Attention(nn.Module):
    """Multi-head attention (self when ``memory`` is None), optional rotary positions on q and k."""

    def __init__(self, dim: int, heads: int, rotary: Rotary | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.rotary = rotary

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        source = x if memory is None else memory
        q, (k, v) = self.q(x), self.kv(source).chunk(2, dim=-1)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        batch, length, dim = q.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, t.shape[1], self.heads, dim // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        return self.out(out.transpose(1, 2).reshape(batch, length, dim))


def _feed_forward(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer (self-attention, GELU feed-forward)."""

    def __init__(self, dim: int, heads: int, ff: int) -> None:
        super().__init__()
        self.norm_1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm_2, self.ff = nn.LayerNorm(dim), _feed_forward(dim, ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x))
        return x + self.ff(self.norm_2(x))


class FiLM(nn.Module):
    """y·(1 + scale) + shift, both from the time vector (Mish → Linear)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Mish(), nn.Linear(dim, 2 * dim))

    def forward(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(t).unsqueeze(1).chunk(2, dim=-1)
        return y * (1 + scale) + shift


class FiLMDecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ff: int, rotary: Rotary) -> None:
        super().__init__()
        self.norm_1, self.self_attn, self.film_1 = nn.LayerNorm(dim), Attention(dim, heads, rotary), FiLM(dim)
        self.norm_2, self.cross_attn, self.film_2 = (
            nn.LayerNorm(dim),
            Attention(dim, heads, rotary),
            FiLM(dim),
        )
        self.norm_3, self.ff, self.film_3 = nn.LayerNorm(dim), _feed_forward(dim, ff), FiLM(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = x + self.film_1(self.self_attn(self.norm_1(x)), t)
        x = x + self.film_2(self.cross_attn(self.norm_2(x), memory), t)
        return x + self.film_3(self.ff(self.norm_3(x)), t)


class SinusoidalEmbedding(nn.Module):
    freqs: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        scale = math.log(10_000) / (half - 1)
        self.register_buffer(
            "freqs", torch.exp(torch.arange(half, dtype=torch.float32) * -scale), persistent=False
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class MotionDiffusion(nn.Module):
    """The ``lmdm`` graph: one guided denoising step of an 80 × 265 motion window (see module doc)."""

    sqrt_recip: torch.Tensor
    sqrt_recip_m1: torch.Tensor

    def __init__(self, arch: LmdmArch) -> None:
        super().__init__()
        d = arch.latent
        self.guidance = arch.guidance
        self.input_proj = nn.Linear(2 * MOTION_DIM, d)
        self.cond_proj = nn.Linear(COND_DIM, d)
        self.cond_encoder = nn.ModuleList(
            EncoderLayer(d, arch.heads, arch.ff) for _ in range(arch.cond_layers)
        )
        self.null_cond_embed = nn.Parameter(torch.randn(1, SEQ_FRAMES, d))
        self.null_cond_hidden = nn.Parameter(torch.randn(1, d))
        self.cond_hidden = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.time_mlp = nn.Sequential(SinusoidalEmbedding(d), nn.Linear(d, 4 * d), nn.Mish())
        self.to_time_cond = nn.Linear(4 * d, d)
        self.to_time_tokens = nn.Linear(4 * d, 2 * d)
        self.norm_cond = nn.LayerNorm(d)
        rotary = Rotary(d)
        self.layers = nn.ModuleList(
            FiLMDecoderLayer(d, arch.heads, arch.ff, rotary) for _ in range(arch.layers)
        )
        self.final = nn.Linear(d, MOTION_DIM)
        abar = alphas_cumprod()
        self.register_buffer("sqrt_recip", torch.from_numpy(np.sqrt(1.0 / abar)).float(), persistent=False)
        self.register_buffer(
            "sqrt_recip_m1", torch.from_numpy(np.sqrt(1.0 / abar - 1)).float(), persistent=False
        )

    def _denoise(
        self,
        x: torch.Tensor,
        cond_frame: torch.Tensor,
        tokens: torch.Tensor,
        hidden: torch.Tensor,
        time: torch.Tensor,
    ) -> torch.Tensor:
        h = self.input_proj(torch.cat([x, cond_frame[:, None, :].expand(-1, SEQ_FRAMES, -1)], dim=-1))
        t_hidden = self.time_mlp(time).to(h.dtype)
        t = self.to_time_cond(t_hidden) + hidden
        time_tokens = self.to_time_tokens(t_hidden).view(x.shape[0], 2, -1)
        memory = self.norm_cond(torch.cat([tokens, time_tokens], dim=1))
        for layer in self.layers:
            h = layer(h, memory, t)
        return self.final(h)

    def forward(
        self, x: torch.Tensor, cond_frame: torch.Tensor, cond: torch.Tensor, time_cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = x.shape[0]
        tokens = self.cond_proj(cond)
        for layer in self.cond_encoder:
            tokens = layer(tokens)
        hidden = self.cond_hidden(tokens.mean(dim=1))
        null_tokens = self.null_cond_embed.to(tokens.dtype).expand(batch, -1, -1)
        null_hidden = self.null_cond_hidden.to(tokens.dtype).expand(batch, -1)
        both = self._denoise(
            torch.cat([x, x]),
            torch.cat([cond_frame, cond_frame]),
            torch.cat([null_tokens, tokens]),
            torch.cat([null_hidden, hidden]),
            torch.cat([time_cond, time_cond]),
        )
        unconditioned, conditioned = both.chunk(2, dim=0)
        x_start = unconditioned + (conditioned - unconditioned) * self.guidance
        recip = self.sqrt_recip[time_cond].view(batch, 1, 1).to(x.dtype)
        recip_m1 = self.sqrt_recip_m1[time_cond].view(batch, 1, 1).to(x.dtype)
        pred_noise = (recip * x - x_start) / recip_m1
        return pred_noise, x_start


class ConvFeature(nn.Module):
    """Conv1d (no bias) → LayerNorm over channels → GELU: one layer of HuBERT-large's front end."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride, bias=False)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)
        return F.gelu(y)


class SpeechEncoder(nn.Module):
    """(B, N) 16 kHz samples → (B, T, 1024) features at 50 Hz, T = floor((N - 400) / 320) + 1."""

    def __init__(self, arch: HubertArch) -> None:
        super().__init__()
        c = arch.conv_channels
        self.front = nn.Sequential(
            *(
                ConvFeature(1 if i == 0 else c, c, k, s)
                for i, (k, s) in enumerate(zip(arch.conv_kernels, arch.conv_strides, strict=True))
            )
        )
        self.project = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, arch.hidden))
        self.pos_conv = nn.Conv1d(
            arch.hidden, arch.hidden, arch.pos_kernel, padding=arch.pos_kernel // 2, groups=arch.pos_groups
        )
        self.layers = nn.ModuleList(
            EncoderLayer(arch.hidden, arch.heads, arch.ff) for _ in range(arch.layers)
        )
        self.norm = nn.LayerNorm(arch.hidden)
        self.out = nn.Identity() if arch.hidden == HUBERT_DIM else nn.Linear(arch.hidden, HUBERT_DIM)
        self._trim = arch.pos_kernel % 2 == 0  # an even kernel with k//2 padding yields one extra step

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        x = self.project(self.front(input_values[:, None, :]).transpose(1, 2))
        pos = self.pos_conv(x.transpose(1, 2))
        if self._trim:
            pos = pos[:, :, :-1]
        x = x + F.gelu(pos).transpose(1, 2)
        for layer in self.layers:
            x = layer(x)
        return self.out(self.norm(x))
