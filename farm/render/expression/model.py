"""The Expression network: one prepared face image + per-frame audio/motion → an RGB frame, batched.

What is learned and what is analytic — **nothing in this module is learned**. ``ExpressionNet`` has
zero trainable parameters; every constant is a registered buffer written down below, so the model
hash, the ONNX graph and the TensorRT engine are fully determined by ``ExpressionConfig`` and
``MODEL_VERSION``. It is a torch module (rather than numpy) so that it batches across sessions and
runs through the same ONNX → TensorRT / torch.compile paths a learned generator would. The parts:

1. Mouth input. ``mouth`` (B, 4) = (opening 0..1, lip width 0..1, rounding 0..1, press 0..1),
   computed per session on the CPU from the viseme model (``farm.render.speech``: visemes with
   coarticulation, mapped in ``motion.mouth_controls``); ``motion.loudness_mouth`` is the older
   loudness/formant mapping kept as the lip-sync baseline.
2. Motion → displacements (analytic). The 68 iBUG landmarks of the aligned face move by fixed
   rules (``_RULES``) in units of the canonical eye distance: jaw and lower lip drop with the
   opening; corners spread, round or lift (width, rounding, smile control); brows rise (brow
   control). A blink is a separate stretch field that pulls the upper-lid skin down to the lower
   lid; a press (p, b, m) is one like it that pulls both lips together over the portrait's own
   lip gap, so the lips shut even on a portrait that shows its teeth.
   Head pose (yaw, pitch, roll controls) is a rigid 2-D transform about a pivot
   under the chin, faded out below the neck line so the shoulders stay put.
3. Dense warp (analytic). Point displacements become a dense flow by Gaussian radial basis
   functions, normalised where they overlap so that points that do not move (nose, eye corners)
   hold their surroundings still. The sampling grid (inverse head pose minus flow) and the mouth
   layer below are computed at 1/4 resolution and upsampled together in one bilinear resize; the
   appearance is then resampled with one full-resolution ``grid_sample`` (backward-warp
   approximation: a pixel samples at ``head⁻¹(x) - flow(x)``).
4. Mouth interior (analytic). When the mouth opens, an ellipse between the lips is composited with
   a procedural interior: dark oral cavity shaded towards the corners, a band of upper teeth and a
   tongue tone, soft-edged.

There is no training script, data or checkpoint because there are no weights. Gestures (nod,
tilt, smile) and idle life (blinks, sway) are control curves computed per session in ``motion.py``.

Inputs (batch on dim 0): ``appearance`` (B, 3, S, S) float in [0, 1]; ``keypoints`` (B, 68, 2)
aligned landmarks in grid_sample units ([-1, 1], align_corners=False); ``mouth`` (B, N_MOUTH) as
in 1; ``controls`` (B, N_CONTROLS) in the order of ``CONTROLS``. Output: (B, 3, S, S) in [0, 1].
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from farm.render.expression.motion import N_CONTROLS, N_MOUTH
from farm.render.expression.prepare import EYE_DISTANCE_FRAC, EYE_Y_FRAC

MODEL_VERSION = "expression-analytic-3"  # 2: mouth input (visemes); 3: pressed lips squeeze shut
N_POINTS = 68
PRESS_OVERSHOOT = 1.5  # each lip's inner edge travels this share of half the gap: past the middle


@dataclass(frozen=True, slots=True)
class ExpressionConfig:
    """Everything that determines the graph; its JSON is part of the model hash."""

    size: int = 512
    flow_downsample: int = 4
    jaw_drop: float = 0.30  # lower-lip drop at full opening, eye distances
    lip_spread: float = 0.12  # corner travel for width/rounding, eye distances
    smile_lift: float = 0.14  # corner lift at full smile, eye distances
    head_shift: float = 0.35  # translation per radian of yaw/pitch, eye distances

    def model_hash(self) -> str:
        """Stable hash of the architecture and constants (engine cache key, ONNX file names)."""
        blob = json.dumps({"version": MODEL_VERSION, "config": asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Displacement rules: (control row, point indices, dx, dy) in eye distances per unit of the control.
# Rows: 0 opening (y down is +), 1 lip width, 2 rounding, 3 smile, 4 brow raise. Corner points carry
# the full horizontal travel, their neighbours half; the image-left side moves -x, the right +x.
_LEFT_CORNERS, _RIGHT_CORNERS = (48, 60), (54, 64)
_LEFT_NEAR, _RIGHT_NEAR = (49, 59), (53, 55)
_RULES: tuple[tuple[int, tuple[int, ...], float, float], ...] = (
    (0, (5, 11), 0.0, 0.32),
    (0, (6, 10), 0.0, 0.58),
    (0, (7, 9), 0.0, 0.81),
    (0, (8,), 0.0, 0.9),
    (0, (3, 4, 12, 13), 0.0, 0.1),
    (0, (55, 56, 57, 58, 59, 65, 66, 67), 0.0, 1.0),
    (0, (49, 50, 51, 52, 53, 61, 62, 63), 0.0, -0.12),
    (0, (48, 54, 60, 64), 0.0, 0.35),
    (1, _LEFT_CORNERS, -1.0, 0.0),
    (1, _RIGHT_CORNERS, 1.0, 0.0),
    (1, _LEFT_NEAR, -0.5, 0.0),
    (1, _RIGHT_NEAR, 0.5, 0.0),
    (2, _LEFT_CORNERS, 1.0, 0.0),
    (2, _RIGHT_CORNERS, -1.0, 0.0),
    (2, _LEFT_NEAR, 0.5, 0.0),
    (2, _RIGHT_NEAR, -0.5, 0.0),
    (2, (56, 57, 58), 0.0, 0.25),
    (2, (50, 51, 52), 0.0, -0.15),
    (3, _LEFT_CORNERS, -0.6, -1.0),
    (3, _RIGHT_CORNERS, 0.6, -1.0),
    (3, _LEFT_NEAR, -0.3, -0.5),
    (3, _RIGHT_NEAR, 0.3, -0.5),
    (3, (40, 41, 46, 47), 0.0, -0.12),
    (4, tuple(range(17, 27)), 0.0, -1.0),
)
# RBF radius per point, eye distances: jaw wide, lips medium, eyes tight, the rest (anchors) 0.3.
_SIGMAS: tuple[tuple[range | tuple[int, ...], float], ...] = (
    ((5, 6, 7, 8, 9, 10, 11), 0.40),
    (range(36, 48), 0.10),
    (range(48, 68), 0.22),
)


def _displacement_basis() -> tuple[torch.Tensor, torch.Tensor]:
    """``basis`` (5, 68, 2): displacement per unit control; ``sigma`` (68,): RBF radii (eye distances)."""
    basis = torch.zeros(5, N_POINTS, 2)
    for row, points, dx, dy in _RULES:
        for i in points:
            basis[row, i] += torch.tensor([dx, dy])
    sigma = torch.full((N_POINTS,), 0.30)
    for points_or_range, value in _SIGMAS:
        sigma[list(points_or_range)] = value
    return basis, sigma


class ExpressionNet(nn.Module):
    """Analytic talking-head generator (see the module docstring). No trainable parameters."""

    # Constant buffers (not state_dict entries: nothing is loaded, everything follows the config).
    basis: torch.Tensor
    inv_two_sigma_sq: torch.Tensor
    low_grid: torch.Tensor
    palette: torch.Tensor
    pivot_offset: torch.Tensor

    def __init__(self, config: ExpressionConfig | None = None) -> None:
        super().__init__()
        self.config = config or ExpressionConfig()
        size = self.config.size
        low = size // self.config.flow_downsample
        basis, sigma = _displacement_basis()
        eye_distance = 2.0 * EYE_DISTANCE_FRAC  # in grid units
        cfg = self.config
        scales = torch.tensor([cfg.jaw_drop, cfg.lip_spread, cfg.lip_spread, cfg.smile_lift, 0.08])
        self.register_buffer("basis", basis * scales[:, None, None] * eye_distance, persistent=False)
        self.register_buffer("inv_two_sigma_sq", 1.0 / (2.0 * (sigma * eye_distance) ** 2), persistent=False)
        self.register_buffer("low_grid", _base_grid(low), persistent=False)  # (low*low, 2)
        # Mouth interior colours: cavity, teeth, tongue.
        palette = torch.tensor([[0.24, 0.07, 0.07], [0.93, 0.91, 0.86], [0.66, 0.33, 0.34]])
        self.register_buffer("palette", palette[:, None, :, None, None], persistent=False)
        pivot_offset = torch.tensor([0.0, 0.35 * eye_distance])  # head pivot: under the chin
        self.register_buffer("pivot_offset", pivot_offset, persistent=False)
        self.eye_distance = eye_distance
        self.low = low

    def forward(
        self, appearance: torch.Tensor, keypoints: torch.Tensor, mouth: torch.Tensor, controls: torch.Tensor
    ) -> torch.Tensor:
        batch = appearance.shape[0]
        size = self.config.size
        mouth = torch.clamp(mouth, 0.0, 1.0)
        blink, yaw, pitch, roll, smile, brow = controls.unbind(dim=1)
        amounts = torch.stack([mouth[:, 0], mouth[:, 1], mouth[:, 2], smile, brow], dim=1)  # (B, 5)
        disp = torch.einsum("bc,ckd->bkd", amounts, self.basis)  # (B, 68, 2)
        flow = self._low_flow(keypoints, disp) + self._blink_flow(keypoints, blink)  # (B, P, 2)
        flow = flow + self._press_flow(keypoints, mouth[:, 3])
        low_grid = self.low_grid.reshape(1, self.low, self.low, 2).expand(batch, self.low, self.low, 2)
        pose = torch.stack([yaw, pitch, roll], dim=1)
        src = self._head_inverse(low_grid, keypoints, pose) - flow.reshape(low_grid.shape)
        overlay = self._mouth_overlay(
            low_grid, keypoints, torch.cat([mouth[:, :3], smile[:, None], mouth[:, 3:4]], dim=1), pose
        )
        # Everything above is smooth at 1/4 resolution: upsample the sampling grid and the mouth layer
        # together (one Resize), then one full-resolution grid_sample and one composite.
        fields = F.interpolate(
            torch.cat([src.permute(0, 3, 1, 2), overlay], dim=1),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
        )
        frame = F.grid_sample(
            appearance,
            fields[:, 0:2].permute(0, 2, 3, 1),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
        alpha = fields[:, 2:3]
        return torch.clamp(frame * (1.0 - alpha) + fields[:, 3:6], 0.0, 1.0)

    def _blink_flow(self, keypoints: torch.Tensor, blink: torch.Tensor) -> torch.Tensor:
        """(B, P, 2) flow at the low-res grid that stretches the upper-lid skin down over each eye.

        Between ``top - gap`` and the lower lid a pixel samples ``blink * gap * ramp`` higher, ramp
        rising linearly from 0 to 1, so the lid skin stretches down to meet the lower lid; the flow
        fades below the lower lid and outside the eye's width.
        """
        flows = []
        for upper, lower, corners in (((37, 38), (41, 40), (36, 39)), ((43, 44), (47, 46), (42, 45))):
            top = keypoints[:, list(upper), 1].mean(dim=1)
            bottom = keypoints[:, list(lower), 1].mean(dim=1)
            left, right = keypoints[:, corners[0], 0], keypoints[:, corners[1], 0]
            gap = torch.clamp(bottom - top, min=0.02 * self.eye_distance)
            sx = 0.55 * (right - left).abs()
            dx = (self.low_grid[None, :, 0] - 0.5 * (left + right)[:, None]) / sx[:, None]
            y = self.low_grid[None, :, 1]
            ramp = torch.clamp((y - (top - gap)[:, None]) / (2.0 * gap[:, None]), 0.0, 1.0)
            below = torch.relu(y - bottom[:, None]) / (0.35 * gap[:, None])
            mask = torch.exp(-0.5 * (dx * dx + below * below))
            flows.append(mask * ramp * (blink * gap)[:, None])
        flow_y = flows[0] + flows[1]
        return torch.stack([torch.zeros_like(flow_y), flow_y], dim=2)

    def _press_flow(self, keypoints: torch.Tensor, press: torch.Tensor) -> torch.Tensor:
        """(B, P, 2) flow that pulls the lips together over the portrait's inner-lip gap (p, b, m).

        Above the gap's middle a pixel samples up to ``press * PRESS_OVERSHOOT * gap`` higher (the
        upper lip comes down), below it as much lower (the lower lip comes up); the shift ramps in
        over one lip height on each side and fades outside the mouth's width, like the blink's lid
        stretch. The lips travel a little past the middle so that they meet after upsampling.
        """
        upper = keypoints[:, [61, 62, 63], 1].mean(dim=1)
        lower = keypoints[:, [65, 66, 67], 1].mean(dim=1)
        gap = torch.clamp(lower - upper, min=0.0)
        middle = 0.5 * (upper + lower)
        lip = torch.clamp(0.5 * (keypoints[:, 57, 1] - keypoints[:, 51, 1]), min=0.03 * self.eye_distance)
        left, right = keypoints[:, 48, 0], keypoints[:, 54, 0]
        sx = 0.5 * (right - left).abs()
        dx = (self.low_grid[None, :, 0] - 0.5 * (left + right)[:, None]) / sx[:, None]
        reach = 0.5 * gap + lip  # from the middle to the outer edge of each lip
        rel = (self.low_grid[None, :, 1] - middle[:, None]) / reach[:, None]
        ramp = torch.clamp(1.0 - rel.abs(), 0.0, 1.0)
        across = torch.exp(-0.5 * (dx / 1.15) ** 8)  # flat over the lips to the corners, gone past them
        # a pixel d above the middle samples press·½gap·(1 − d/reach) higher: the middle shows the
        # upper lip's inner edge, the lip's outer edge stays put (the lip is squeezed, not cut)
        shift = (press * PRESS_OVERSHOOT * 0.5 * gap)[:, None] * ramp * across * torch.sign(rel)
        return torch.stack([torch.zeros_like(shift), -shift], dim=2)

    def _low_flow(self, keypoints: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
        """Gaussian-RBF interpolation of point displacements on the low-res grid, (B, P, 2)."""
        delta = self.low_grid[None, :, None, :] - keypoints[:, None, :, :]  # (B, P, 68, 2)
        weights = torch.exp(-(delta * delta).sum(dim=3) * self.inv_two_sigma_sq)  # (B, P, 68)
        total = torch.clamp(weights.sum(dim=2, keepdim=True), min=1.0)
        return torch.bmm(weights / total, disp)

    def _head_inverse(self, grid: torch.Tensor, keypoints: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Where each output pixel comes from under the inverse head pose, faded below the neck.

        ``pose`` (B, 3) is (yaw, pitch, roll): yaw and pitch shift the head, roll turns it about a
        pivot under the chin.
        """
        yaw, pitch, roll = pose.unbind(dim=1)
        pivot = keypoints[:, 8, :] + self.pivot_offset
        shift = torch.stack([yaw, pitch], dim=1) * (self.config.head_shift * self.eye_distance)  # (B, 2)
        cos, sin = torch.cos(roll), torch.sin(roll)
        rel = grid - pivot[:, None, None, :] - shift[:, None, None, :]
        x, y = rel[..., 0], rel[..., 1]
        c, s = cos[:, None, None], sin[:, None, None]
        moved = torch.stack([c * x + s * y, -s * x + c * y], dim=3) + pivot[:, None, None, :]
        neck_y = keypoints[:, 8, 1] + 0.25 * self.eye_distance
        head_weight = torch.sigmoid((neck_y[:, None, None] - grid[..., 1]) / (0.12 * self.eye_distance))
        return grid + head_weight[..., None] * (moved - grid)

    def _mouth_overlay(
        self, grid: torch.Tensor, keypoints: torch.Tensor, shape: torch.Tensor, pose: torch.Tensor
    ) -> torch.Tensor:
        """(B, 4, h, w) premultiplied layer: alpha, then RGB × alpha of the procedural mouth interior.

        ``shape`` (B, 5) is (opening, width, rounding, smile, press); ``pose`` (B, 3) as in
        ``_head_inverse``. A press also lays the dark line where closed lips meet over the seam of the
        press flow, which the 1/4-resolution flow cannot draw sharply (the portrait's teeth would
        show through it).
        """
        opening, width, rounding, smile, press = shape.unbind(dim=1)
        yaw, pitch, roll = pose.unbind(dim=1)
        pivot = keypoints[:, 8, :] + self.pivot_offset
        centre = keypoints[:, 60:68, :].mean(dim=1)  # (B, 2)
        half_width = 0.36 * (keypoints[:, 54, 0] - keypoints[:, 48, 0]).abs()
        drop = self.config.jaw_drop * self.eye_distance * opening
        centre = centre + torch.stack([torch.zeros_like(drop), 0.45 * drop], dim=1)
        centre = _rotate_about(centre, pivot, roll) + torch.stack([yaw, pitch], dim=1) * (
            self.config.head_shift * self.eye_distance
        )
        half_w = half_width * (1.0 + 0.3 * width - 0.35 * rounding + 0.2 * smile)
        half_h = 0.5 * drop + 1e-4
        rel = grid - centre[:, None, None, :]
        nx = rel[..., 0] / half_w[:, None, None]
        ny = rel[..., 1] / half_h[:, None, None]
        radius = nx * nx + ny * ny
        visible = torch.clamp(opening * 4.0 - 0.2, 0.0, 1.0)[:, None, None]
        alpha = torch.sigmoid((1.0 - radius) * 6.0) * visible
        teeth_w = torch.sigmoid((-0.3 - ny) * 12.0)[:, None] * torch.sigmoid((0.8 - nx.abs()) * 10.0)[:, None]
        tongue_w = torch.sigmoid((ny - 0.45) * 6.0)[:, None]
        cavity, teeth, tongue = self.palette[0], self.palette[1], self.palette[2]
        shade = 1.0 - 0.35 * torch.clamp(radius, 0.0, 1.0)[:, None]  # darker towards the corners
        cavity = cavity * shade + tongue_w * (tongue - cavity) * 0.6 * shade
        interior = cavity + teeth_w * (teeth - cavity)
        alpha = alpha[:, None]
        seam_alpha, seam_rgb = self._lip_seam(grid, keypoints, press, pivot, pose)
        rgb = interior * alpha + seam_rgb * seam_alpha * (1.0 - alpha)
        return torch.cat([alpha + seam_alpha * (1.0 - alpha), rgb], dim=1)

    def _lip_seam(
        self,
        grid: torch.Tensor,
        keypoints: torch.Tensor,
        press: torch.Tensor,
        pivot: torch.Tensor,
        pose: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha (B, 1, h, w), RGB (1, 3, 1, 1)) of the line where pressed lips meet."""
        yaw, pitch, roll = pose.unbind(dim=1)
        upper = keypoints[:, [61, 62, 63], :].mean(dim=1)
        lower = keypoints[:, [65, 66, 67], :].mean(dim=1)
        meet = 0.5 * (upper + lower)
        meet = _rotate_about(meet, pivot, roll) + torch.stack([yaw, pitch], dim=1) * (
            self.config.head_shift * self.eye_distance
        )
        gap = torch.clamp(lower[:, 1] - upper[:, 1], min=0.0)
        half_width = 0.42 * (keypoints[:, 54, 0] - keypoints[:, 48, 0]).abs()
        rel = grid - meet[:, None, None, :]
        nx = rel[..., 0] / half_width[:, None, None]
        thick = (0.12 * gap + 0.6 / self.low)[:, None, None]  # about one cell of the flow grid
        across = torch.exp(-0.5 * nx**8)
        line = torch.exp(-0.5 * (rel[..., 1] / thick) ** 2) * across
        visible = 0.85 * torch.clamp((press - 0.2) / 0.6, 0.0, 1.0)[:, None, None]
        rgb = self.palette[2] * 0.8  # a shadowed lip tone, a little darker than the tongue
        return (line * visible)[:, None], rgb


def _rotate_about(point: torch.Tensor, pivot: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Forward rotation of (B, 2) points by ``angle`` (B,) about ``pivot`` (B, 2)."""
    rel = point - pivot
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], dim=1) + pivot


def _base_grid(size: int) -> torch.Tensor:
    """Pixel-centre coordinates of a size×size image in grid_sample units, (size*size, 2) as (x, y)."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)


def example_inputs(batch: int, config: ExpressionConfig) -> tuple[torch.Tensor, ...]:
    """Deterministic dummy inputs of the right shapes (export, warm-up, tests)."""
    gen = torch.Generator().manual_seed(batch)
    size = config.size
    appearance = torch.rand(batch, 3, size, size, generator=gen)
    template = _canonical_template()
    keypoints = template[None].repeat(batch, 1, 1) + 0.01 * torch.randn(batch, N_POINTS, 2, generator=gen)
    mouth = 0.5 * torch.rand(batch, N_MOUTH, generator=gen)
    controls = 0.2 * torch.rand(batch, N_CONTROLS, generator=gen)
    return appearance, keypoints, mouth, controls


def _canonical_template() -> torch.Tensor:
    """A plausible aligned 68-point face in grid units (for dummy inputs only)."""
    from farm.render.landmarks import _TEMPLATE

    pts = torch.from_numpy(_TEMPLATE.copy())
    left, right = pts[36:42].mean(dim=0), pts[42:48].mean(dim=0)
    scale = 2.0 * EYE_DISTANCE_FRAC / float((right - left).norm())
    centre = (left + right) / 2
    target = torch.tensor([0.0, EYE_Y_FRAC * 2.0 - 1.0])
    return (pts - centre) * scale + target
