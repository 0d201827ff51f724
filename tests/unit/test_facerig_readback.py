"""Reading lip gap and mouth width back from pictures (the rendered-frames half of the lip-sync bench)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm.render.facerig.readback import MouthReader, read_mouths
from farm.render.landmarks import sample_portrait

pytestmark = pytest.mark.unit


def test_the_sample_portraits_smile_reads_as_parted_lips_of_a_plausible_width() -> None:
    reading = MouthReader().read(sample_portrait())
    assert reading.found
    assert 55 < reading.iod_px < 65  # outer eye corners of the astronaut, about 60 px apart
    assert 0.05 < reading.lip_gap_rel < 0.2 and 0.6 < reading.width_rel < 0.85


def test_a_frame_without_a_face_reads_as_missing() -> None:
    reading = MouthReader().read(np.full((256, 256, 3), 90, np.uint8))
    assert not reading.found and math.isnan(reading.lip_gap_rel) and math.isnan(reading.width_rel)


def test_a_clip_is_read_frame_by_frame_with_the_same_answer_for_the_same_picture() -> None:
    frames = [sample_portrait()] * 3 + [np.zeros((512, 512, 3), np.uint8), sample_portrait()]
    readings = read_mouths(frames)
    assert [r.found for r in readings] == [True, True, True, False, True]
    assert readings[1].lip_gap_px == pytest.approx(readings[2].lip_gap_px, abs=0.05)
    assert readings[4].lip_gap_px == pytest.approx(
        readings[0].lip_gap_px, abs=0.5
    )  # found again after a miss
