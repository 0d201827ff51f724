"""ExpressionNet: an analytic, batched generator whose mouth follows the audio and whose eyes blink."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss
import torch

from farm.render.audio import log_mel
from farm.render.expression.model import ExpressionConfig, ExpressionNet, example_inputs
from farm.render.expression.motion import BLINK, N_CONTROLS, N_MOUTH, loudness_mouth, mouth_controls
from farm.render.expression.prepare import PreparedAvatar, prepare_avatar
from farm.render.landmarks import sample_portrait
from farm.render.speech.mouth import Coarticulation
from farm.render.speech.visemes import INDEX, N_VISEMES

pytestmark = pytest.mark.unit

SIZE = 128
MEL_WINDOW = 5  # the loudness baseline's window: two frames either side of the frame
REST = np.zeros(N_MOUTH, np.float32)


@pytest.fixture(scope="module")
def avatar() -> PreparedAvatar:
    return prepare_avatar(sample_portrait(), SIZE)


@pytest.fixture(scope="module")
def net() -> ExpressionNet:
    return ExpressionNet(ExpressionConfig(size=SIZE)).eval()


def _vowel(f1: float, f2: float, rms: float = 0.1) -> np.ndarray:
    t = np.arange(MEL_WINDOW * 640) / 16_000
    source = sum(np.sin(2 * np.pi * 130 * k * t) for k in range(1, 60))
    out = np.zeros_like(t)
    for freq, gain in ((f1, 1.0), (f2, 0.7), (2800.0, 0.4)):
        b, a = ss.iirpeak(freq, freq / 90.0, fs=16_000)
        out = out + gain * ss.lfilter(b, a, source)
    return (out / np.sqrt(np.mean(out**2)) * rms).astype(np.float32)


def _render(
    net: ExpressionNet, avatar: PreparedAvatar, mouth: np.ndarray, controls: np.ndarray
) -> np.ndarray:
    with torch.inference_mode():
        out = net(
            torch.from_numpy(avatar.appearance)[None],
            torch.from_numpy(avatar.keypoints)[None],
            torch.from_numpy(np.asarray(mouth, np.float32))[None],
            torch.from_numpy(controls.astype(np.float32))[None],
        )
    return out[0].permute(1, 2, 0).numpy()


def _region(avatar: PreparedAvatar, first: int, last: int, pad: int = 3) -> tuple[slice, slice]:
    pts = avatar.landmarks_px[first : last + 1]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


def test_the_model_has_no_trainable_weights_as_its_docstring_says(net: ExpressionNet) -> None:
    assert sum(p.numel() for p in net.parameters()) == 0
    assert net.state_dict() == {}


def test_a_batch_maps_to_frames_of_the_configured_size_in_unit_range(net: ExpressionNet) -> None:
    inputs = example_inputs(3, net.config)
    with torch.inference_mode():
        out = net(*inputs)
    assert out.shape == (3, 3, SIZE, SIZE)
    assert out.dtype == torch.float32
    assert float(out.min()) >= 0.0
    assert float(out.max()) <= 1.0


def test_each_batch_item_is_rendered_independently_of_its_neighbours(net: ExpressionNet) -> None:
    inputs = example_inputs(4, net.config)
    with torch.inference_mode():
        together = net(*inputs)
        alone = torch.cat([net(*(t[i : i + 1] for t in inputs)) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_silence_with_neutral_controls_reproduces_the_face(
    net: ExpressionNet, avatar: PreparedAvatar
) -> None:
    frame = _render(net, avatar, REST, np.zeros(N_CONTROLS))
    still = avatar.appearance.transpose(1, 2, 0)
    assert np.abs(frame - still)[4:-4, 4:-4].max() < 1e-3


def _pose_of(viseme: str) -> np.ndarray:
    row = np.zeros(N_VISEMES, np.float32)
    row[INDEX[viseme]] = 1.0
    coarticulation = Coarticulation()
    for _ in range(10):
        pose = coarticulation.step(row)
    return mouth_controls(pose)


def test_an_open_viseme_opens_the_mouth_and_leaves_the_eyes_alone(
    net: ExpressionNet, avatar: PreparedAvatar
) -> None:
    silent = _render(net, avatar, REST, np.zeros(N_CONTROLS))
    speaking = _render(net, avatar, _pose_of("aa"), np.zeros(N_CONTROLS))
    mouth, eyes = _region(avatar, 48, 67, pad=6), _region(avatar, 36, 47)
    assert np.abs(speaking - silent)[mouth].mean() > 0.03
    assert np.abs(speaking - silent)[eyes].max() < 0.01  # sub-pixel leak of the jaw RBF at most


def test_a_blink_closes_the_eyes_and_leaves_the_mouth_alone(
    net: ExpressionNet, avatar: PreparedAvatar
) -> None:
    controls = np.zeros(N_CONTROLS)
    open_eyes = _render(net, avatar, REST, controls)
    controls[BLINK] = 1.0
    closed = _render(net, avatar, REST, controls)
    mouth, eyes = _region(avatar, 48, 67), _region(avatar, 36, 47)
    assert np.abs(closed - open_eyes)[eyes].mean() > 0.02
    assert np.abs(closed - open_eyes)[mouth].max() < 1e-3


def test_visemes_map_to_the_mouth_row_open_spread_round_and_pressed() -> None:
    aa, ih, ou, pp, sil = (_pose_of(v) for v in ("aa", "ih", "ou", "PP", "sil"))
    assert aa[0] > 0.9 and ih[1] > 0.9 and ou[2] > 0.9 and pp[3] > 0.9
    assert pp[0] < 0.05 and list(sil) == [0.0] * N_MOUTH


def test_a_press_shuts_the_portraits_own_lip_gap(net: ExpressionNet, avatar: PreparedAvatar) -> None:
    rest = _render(net, avatar, REST, np.zeros(N_CONTROLS))
    pressed = _render(net, avatar, np.array([0, 0, 0, 1], np.float32), np.zeros(N_CONTROLS))
    lips, eyes = _region(avatar, 60, 67, pad=2), _region(avatar, 36, 47)
    assert np.abs(pressed - rest)[lips].mean() > 0.01
    assert np.abs(pressed - rest)[eyes].max() < 1e-3


def test_the_loudness_baseline_spreads_front_vowels_and_rounds_back_vowels() -> None:
    def shape(f1: float, f2: float) -> np.ndarray:
        return loudness_mouth(log_mel(_vowel(f1, f2)))

    ee, oo, ah = shape(280, 2250), shape(300, 870), shape(700, 1200)
    assert ee[1] > 0.5 and ee[2] < 0.1  # /i/: wide
    assert oo[2] > 0.5 and oo[1] < 0.1  # /u/: round
    assert ah[1] < 0.1 and ah[2] < 0.2  # /a/: open, neither
    assert min(ee[0], oo[0], ah[0]) > 0.5


def test_the_model_hash_follows_the_configuration() -> None:
    assert ExpressionConfig(size=512).model_hash() == ExpressionConfig(size=512).model_hash()
    assert ExpressionConfig(size=512).model_hash() != ExpressionConfig(size=256).model_hash()
    assert ExpressionConfig(jaw_drop=0.2).model_hash() != ExpressionConfig().model_hash()


def test_preparation_aligns_the_eyes_to_the_canonical_line(avatar: PreparedAvatar) -> None:
    left, right = avatar.landmarks_px[36:42].mean(axis=0), avatar.landmarks_px[42:48].mean(axis=0)
    assert abs(left[1] - right[1]) < 0.5
    assert right[0] - left[0] == pytest.approx(0.16 * SIZE, abs=0.5)
    assert avatar.appearance.shape == (3, SIZE, SIZE)
    assert avatar.keypoints.min() > -1.0 and avatar.keypoints.max() < 1.0
