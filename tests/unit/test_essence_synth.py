"""Mouth synthesis: a large region's splines on a coarse grid draw the same mouths as exact ones."""

from __future__ import annotations

import numpy as np
import pytest

from farm.kernel.characters import BuildOptions
from farm.render.essence.bank import person_bank
from farm.render.essence.builder import frame_image, locate_face
from farm.render.essence.mouthrig import measured
from farm.render.essence.synth import MouthSynth, mouth_region
from farm.render.landmarks import sample_portrait

pytestmark = pytest.mark.unit

SHAPES = ("pressed", "full", "mid_round", "ff")  # lips pressed, wide open, round, teeth on the lip


def _synths(size: int) -> tuple[MouthSynth, MouthSynth]:
    """(the builder's synthesis, one evaluating its splines at every pixel) of the sample portrait."""
    image, options = sample_portrait(), BuildOptions()
    portrait, face = frame_image(image, locate_face(image, options), options, size)
    region = mouth_region(face, portrait.shape[:2])
    return MouthSynth(portrait, face, region), MouthSynth(portrait, face, region, spline_nodes=0)


def _patches(synth: MouthSynth, smile: float) -> np.ndarray:
    shapes = [measured(synth.rig, s) for s in person_bank() if s.name in SHAPES]
    assert len(shapes) == len(SHAPES)
    return np.stack([synth.render(s, smile) for s in shapes]).astype(np.int16)


def test_at_512_px_the_coarse_splines_change_no_visible_pixel_of_the_mouths() -> None:
    coarse, exact = _synths(512)
    for smile in (0.0, 1.0):
        diff = np.abs(_patches(coarse, smile) - _patches(exact, smile))
        assert diff.any()  # the coarse grid is in use at this size
        assert diff.mean() < 0.1  # grey levels, over every pixel of every shape
        assert np.percentile(diff, 99.9) <= 10  # a few lip-edge pixels move by a fraction of a pixel


def test_a_small_region_is_drawn_by_the_exact_splines() -> None:
    coarse, exact = _synths(192)
    assert np.array_equal(_patches(coarse, 0.5), _patches(exact, 0.5))
