"""The learned renderer's geometry: LivePortrait crop from the farm's 68 points, keypoints, paste-back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm.render.landmarks import detect_face, sample_portrait
from farm.render.learned.geometry import (
    CANVAS_SCALE,
    CROP_SCALE,
    CROP_SIZE,
    Canvas,
    canvas_geometry,
    crop_image,
    liveportrait_crop,
    paste_back_host,
    rotation_matrices,
    transform_keypoints,
)
from farm.render.learned.graphs import TorchGraphs

pytestmark = pytest.mark.unit


def _portrait_points() -> tuple[np.ndarray, np.ndarray]:
    image = sample_portrait()
    return image, detect_face(image).points


def test_the_crop_levels_the_eyes_and_spans_2_3_face_heights() -> None:
    image, points = _portrait_points()
    crop = liveportrait_crop(points)
    mapped = points @ crop.matrix[:, :2].T + crop.matrix[:, 2]
    left, right = mapped[36:42].mean(0), mapped[42:48].mean(0)
    assert abs(left[1] - right[1]) < 3.0  # the eye line is level in the crop
    assert left[0] < CROP_SIZE / 2 < right[0]  # and centred between the eyes
    extent = mapped.max(0) - mapped.min(0)
    assert CROP_SIZE / CROP_SCALE * 0.97 <= extent.max() <= CROP_SIZE / CROP_SCALE * 1.03
    assert mapped[:, 1].mean() > CROP_SIZE / 2  # shifted up by vy_ratio: the face sits low, hair fits
    assert crop_image(image, crop).shape == (CROP_SIZE, CROP_SIZE, 3)


def test_a_tilted_face_gets_an_upright_crop() -> None:
    _, points = _portrait_points()
    centre = points.mean(0)
    angle = np.radians(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = (points - centre) @ rot.T + centre
    upright = liveportrait_crop(points)
    turned = liveportrait_crop(tilted)
    a = points @ upright.matrix[:, :2].T + upright.matrix[:, 2]
    b = tilted @ turned.matrix[:, :2].T + turned.matrix[:, 2]
    assert np.abs(a - b).max() < 1e-3  # the same crop of the same face, in crop pixels


def test_rotations_are_orthonormal_and_a_90_degree_yaw_turns_x_onto_the_depth_axis() -> None:
    rot = rotation_matrices(np.array([10.0, 0.0]), np.array([-35.0, 90.0]), np.array([5.0, 0.0]))
    for r in rot:
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-9)
    assert np.allclose(np.array([1.0, 0, 0]) @ rot[1], [0, 0, -1], atol=1e-9)


def test_keypoints_with_no_pose_or_expression_are_the_scaled_canonical_points() -> None:
    kp = np.random.default_rng(0).normal(size=(21, 3)).astype(np.float32)
    t = np.array([0.1, -0.2, 5.0])
    out = transform_keypoints(kp, (0.0, 0.0, 0.0), t, np.zeros((21, 3)), 1.5)
    assert np.allclose(out, 1.5 * kp + [0.1, -0.2, 0.0], atol=1e-6)  # depth translation dropped


def _canvas(size: int = 128) -> Canvas:
    _, points = _portrait_points()
    crop = liveportrait_crop(points)
    grid, mask = canvas_geometry(crop, size)
    background = np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return Canvas(background, grid, mask)


def test_paste_back_shows_the_render_inside_the_crop_and_the_picture_outside() -> None:
    canvas = _canvas()
    render = np.full((3, CROP_SIZE, CROP_SIZE), 0.5, np.float32)
    frame = paste_back_host(render, canvas)
    centre = canvas.size // 2
    assert canvas.mask[centre, centre] == 1.0 and canvas.mask[0, 0] == 0.0
    assert np.all(frame[centre - 5 : centre + 5, centre - 5 : centre + 5] == 128)
    assert np.array_equal(frame[0, 0], canvas.background[0, 0])  # outside the crop: the original picture
    inside = (canvas.mask > 0).mean()
    assert (1 / CANVAS_SCALE) ** 2 * 0.95 < inside < (1 / CANVAS_SCALE) ** 2 * 1.05


def test_device_paste_back_equals_the_host_paste_back() -> None:
    canvas = _canvas()
    render = np.random.default_rng(2).random((3, CROP_SIZE, CROP_SIZE), dtype=np.float32)
    host = paste_back_host(render, canvas)
    graphs = TorchGraphs({}, "cpu")
    (device,) = graphs.paste_back(
        torch.from_numpy(render[None]),
        torch.from_numpy(canvas.grid[None]),
        torch.from_numpy(canvas.mask[None]),
        torch.from_numpy(canvas.background[None]),
    )
    assert np.abs(device.astype(int) - host.astype(int)).max() <= 1
