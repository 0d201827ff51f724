"""Face and landmark detection on real images that ship with scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from farm.kernel.errors import NoFaceFound
from farm.render.landmarks import detect_face, sample_portrait

pytestmark = pytest.mark.unit


def test_the_sample_portrait_yields_the_astronauts_face() -> None:
    face = detect_face(sample_portrait())
    x0, y0, x1, y1 = face.box
    assert abs(x0 - 175) < 10 and abs(y0 - 76) < 10 and abs(x1 - 265) < 10 and abs(y1 - 166) < 10
    assert face.points.shape == (68, 2)
    assert face.points.dtype == np.float32


def test_landmarks_are_in_anatomical_order() -> None:
    face = detect_face(sample_portrait())
    assert face.left_eye[0] < face.right_eye[0]
    assert face.left_eye[1] < face.nose_tip[1] < face.mouth_center[1] < face.chin[1]
    assert 0.6 * face.eye_distance < face.mouth_width < 1.4 * face.eye_distance


def test_an_image_without_a_face_is_refused_with_its_code() -> None:
    with pytest.raises(NoFaceFound) as caught:
        detect_face(data.coffee())
    assert caught.value.code == "NO_FACE_FOUND"


def test_a_flat_grey_image_is_refused() -> None:
    with pytest.raises(NoFaceFound):
        detect_face(np.full((256, 256, 3), 128, np.uint8))


def test_a_large_photo_is_searched_downscaled_and_answered_in_its_own_pixels() -> None:
    import cv2

    small = detect_face(sample_portrait())
    big = detect_face(cv2.resize(sample_portrait(), (2048, 2048), interpolation=cv2.INTER_CUBIC))
    assert np.allclose(big.points / 4.0, small.points, atol=3.0)
    assert abs(big.box[0] / 4.0 - small.box[0]) < 4


def test_without_dlib_the_haar_fallback_answers_or_says_no_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    from farm.kernel.errors import FarmError
    from farm.render import landmarks

    monkeypatch.setattr(landmarks, "_dlib_models", lambda: None)
    if landmarks._haar_cascade() is None:  # OpenCV 5 ships no cascades
        with pytest.raises(FarmError) as caught:
            detect_face(sample_portrait())
        assert caught.value.code == "INTERNAL_ERROR" and "detector" in caught.value.message
    else:
        face = detect_face(sample_portrait())
        assert face.method == "haar-template" and face.points.shape == (68, 2)
