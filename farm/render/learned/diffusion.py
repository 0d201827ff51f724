"""The motion model's diffusion schedule and its DDIM sampler, for numpy arrays and torch tensors alike.

The reference (Ditto's LMDM) trains with 1000 steps on a cosine schedule (s = 0.008, betas clipped at
0.999) and samples with DDIM at eta = 1 over ``sampling_steps`` evenly spaced timesteps (time pairs
from ``linspace(-1, 999, S + 1)`` reversed; the last step returns the predicted clean sample). One
step is one call of the ``lmdm`` graph, which returns both the predicted noise and the predicted
clean sample. The update only multiplies arrays by Python floats, so the same ``sample`` drives a
numpy batch (ONNX Runtime) and a torch batch on the GPU.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

TRAIN_STEPS = 1000
COSINE_S = 0.008
ETA = 1.0


@functools.cache
def alphas_cumprod(steps: int = TRAIN_STEPS, s: float = COSINE_S) -> np.ndarray:
    """ᾱ_t for t in [0, steps): the cosine schedule of Nichol & Dhariwal (2021), float64."""
    t = np.linspace(0, steps, steps + 1) / steps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    betas = np.clip(1 - abar[1:] / abar[:-1], 0, 0.999)
    out = np.cumprod(1.0 - betas)
    out.setflags(write=False)
    return out


def time_pairs(sampling_steps: int, steps: int = TRAIN_STEPS) -> list[tuple[int, int]]:
    """(t, t_next) for each sampling step, from t = steps - 1 down to t_next = -1 (clean sample)."""
    if sampling_steps < 1:
        raise ValueError(f"sampling_steps must be >= 1, got {sampling_steps}")
    times = [int(v) for v in np.linspace(-1, steps - 1, sampling_steps + 1)][::-1]
    return list(itertools.pairwise(times))


def step_coefficients(t: int, t_next: int, eta: float = ETA) -> tuple[float, float, float]:
    """(√ᾱ_next, c, σ) of x_next = x0·√ᾱ_next + c·ε + σ·z (DDIM; eta = 1 is ancestral-like)."""
    abar = alphas_cumprod()
    alpha, alpha_next = float(abar[t]), float(abar[t_next])
    sigma = eta * math.sqrt((1 - alpha / alpha_next) * (1 - alpha_next) / (1 - alpha))
    c = math.sqrt(max(0.0, 1 - alpha_next - sigma**2))
    return math.sqrt(alpha_next), c, sigma


StepFn = Callable[[Any, int], tuple[Any, Any]]
"""``step(x, t) -> (pred_noise, x_start)``: one call of the denoiser at integer timestep ``t``."""


def sample(step: StepFn, x: Any, noises: Sequence[Any], sampling_steps: int) -> Any:
    """Run the DDIM loop from pure noise ``x``; ``noises`` holds one fresh N(0, 1) array per step."""
    pairs = time_pairs(sampling_steps)
    if len(noises) < len(pairs) - 1:
        raise ValueError(f"need {len(pairs) - 1} noise arrays for {sampling_steps} steps, got {len(noises)}")
    for i, (t, t_next) in enumerate(pairs):
        pred_noise, x_start = step(x, t)
        if t_next < 0:
            return x_start
        a, c, sigma = step_coefficients(t, t_next)
        x = x_start * a + pred_noise * c + noises[i] * sigma
    return x
