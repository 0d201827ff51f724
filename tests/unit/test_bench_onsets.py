"""The room benches' onset analysis: audio onset, mouth opening, and the mouth back to idle."""

from __future__ import annotations

import numpy as np
import pytest

from farm.bench.onsets import LOUD, THUMB, MouthModel, audio_onset

pytestmark = pytest.mark.unit

BOX = (24, 40, 40, 52)


def thumb(mouth_level: int, noise: int = 0, seed: int = 0) -> np.ndarray:
    """A grey face with the mouth box at ``mouth_level`` (idle is 100), plus a little noise."""
    rng = np.random.default_rng(seed)
    image = np.full((THUMB, THUMB, 3), 120, np.int16)
    x0, y0, x1, y1 = BOX
    image[y0:y1, x0:x1] = mouth_level
    image += rng.integers(-noise, noise + 1, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def model() -> MouthModel:
    idle = [thumb(100, noise=2, seed=i) for i in range(6)]
    return MouthModel(BOX, [MouthModel._crop(i, BOX) for i in idle])


def test_the_audio_onset_is_the_first_loud_level_after_the_moment() -> None:
    levels = [(0.0, 3000.0), (1.0, 10.0), (1.1, LOUD - 1), (1.2, LOUD + 1), (1.3, 9000.0)]
    assert audio_onset(levels, after=0.5) == 1.2
    assert audio_onset(levels, after=1.25) == 1.3
    assert audio_onset([(1.0, 10.0)], after=0.0) is None


def test_the_mouth_onset_is_the_first_frame_that_leaves_the_idle_appearance() -> None:
    frames = [(t / 25, thumb(100, noise=2, seed=t)) for t in range(30)]  # idle until 1.2 s
    frames += [(1.2 + t / 25, thumb(30)) for t in range(10)]  # the mouth opens (dark)
    assert model().onset(frames, after=1.0) == pytest.approx(1.2)
    assert model().onset(frames[:30], after=1.0) is None  # idle noise alone is not an onset


def test_after_a_clear_the_mouth_is_back_to_idle_at_the_first_of_five_idle_frames() -> None:
    m = model()
    talking = [(t / 25, thumb(30 + 40 * (t % 2))) for t in range(20)]  # open/half-open until 0.8 s
    flicker = [(0.8, thumb(100)), (0.84, thumb(30))]  # one idle-looking frame is not "back"
    idle = [(0.88 + t / 25, thumb(100, noise=2, seed=t)) for t in range(8)]
    frames = [(-1.0 + t / 25, thumb(100, noise=2, seed=t)) for t in range(20)] + talking + flicker + idle
    margin = m.margin(frames, before=-0.1)
    assert margin is not None
    assert m.back_to_idle(frames, after=0.5, margin=margin) == pytest.approx(0.88)
    assert m.back_to_idle(frames[:-5], after=0.5, margin=margin) is None  # never five in a row
