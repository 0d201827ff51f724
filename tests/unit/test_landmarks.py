"""The face rig (MediaPipe's Apache-2.0 models through LiteRT) on real images that ship with packages."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from farm.kernel.errors import ModelFileInvalid, NoFaceFound
from farm.render.facerig import topology as topo
from farm.render.facerig.loader import MODELS_DIR, RECORD_FILE, TfliteModel, records, verified_path
from farm.render.landmarks import detect_face, sample_portrait

pytestmark = pytest.mark.unit

# Where dlib's 68-point model (the rig this one replaced) put these points on the sample portrait.
DLIB_ASTRONAUT = {30: (225, 127), 36: (195, 101), 39: (212, 104), 42: (237, 106), 45: (255, 105),
                  48: (201, 139), 54: (246, 141), 62: (223, 144), 66: (223, 151)}  # fmt: skip


@pytest.fixture(scope="module")
def astronaut() -> object:
    return detect_face(sample_portrait())


def small_face_canvas() -> np.ndarray:
    """The sample portrait at a quarter of its size on a grey 1024² canvas: a face of about 28 px."""
    canvas = np.full((1024, 1024, 3), 128, np.uint8)
    canvas[560:688, 380:508] = cv2.resize(sample_portrait(), (128, 128), interpolation=cv2.INTER_AREA)
    return canvas


def test_the_sample_portrait_yields_the_astronauts_face(astronaut) -> None:
    x0, y0, x1, y1 = astronaut.box
    assert abs(x0 - 178) <= 4 and abs(y0 - 83) <= 4 and abs(x1 - 273) <= 4 and abs(y1 - 178) <= 4
    assert astronaut.points.shape == (68, 2) and astronaut.points.dtype == np.float32
    assert astronaut.mesh.shape == (478, 3) and astronaut.method == "mediapipe"


def test_eye_mouth_and_nose_points_land_within_two_pixels_of_dlibs(astronaut) -> None:
    for index, (x, y) in DLIB_ASTRONAUT.items():
        assert np.hypot(*(astronaut.points[index] - (x, y))) < 2.0, index


def test_landmarks_are_in_anatomical_order(astronaut) -> None:
    assert astronaut.left_eye[0] < astronaut.right_eye[0]
    assert astronaut.left_eye[1] < astronaut.nose_tip[1] < astronaut.mouth_center[1] < astronaut.chin[1]
    assert 0.6 * astronaut.eye_distance < astronaut.mouth_width < 1.4 * astronaut.eye_distance


def test_the_mesh_names_lids_irises_and_lips_where_they_are(astronaut) -> None:
    upper = astronaut.mesh_points(topo.EYE_R_UPPER)
    lower = astronaut.mesh_points(topo.EYE_R_LOWER)
    assert (upper[1:-1, 1] < lower[1:-1, 1]).all()  # the upper lid above the lower one
    iris = astronaut.mesh[topo.IRIS_R_CENTRE, :2]
    assert upper[:, 0].min() < iris[0] < upper[:, 0].max()
    assert upper[4, 1] - 3 < iris[1] < lower[4, 1] + 3
    inner_up = astronaut.mesh_points(topo.LIPS_INNER_UPPER)
    outer_up = astronaut.mesh_points(topo.LIPS_OUTER_UPPER)
    assert (outer_up[3:-3, 1] < inner_up[3:-3, 1]).all()  # the upper lip's outer edge above its inner one


def test_the_68_point_mapping_is_complete_and_uses_mesh_points_only() -> None:
    assert len(topo.IBUG68_FROM_MESH) == 68
    assert all(0 <= i < topo.MESH_POINTS for group in topo.IBUG68_FROM_MESH for i in group)


def test_an_image_without_a_face_is_refused_with_its_code() -> None:
    with pytest.raises(NoFaceFound) as caught:
        detect_face(data.coffee())
    assert caught.value.code == "NO_FACE_FOUND"


def test_a_flat_grey_image_is_refused() -> None:
    with pytest.raises(NoFaceFound):
        detect_face(np.full((256, 256, 3), 128, np.uint8))


def test_a_small_face_in_a_large_frame_is_found_on_tiles_and_placed_like_the_big_one(astronaut) -> None:
    face = detect_face(small_face_canvas())
    expected = astronaut.points / 4.0 + np.array([380, 560], np.float32)
    assert np.abs(face.points[36:68] - expected[36:68]).mean() < 1.5  # eyes, nose, lips; IOD ~15 px
    with pytest.raises(NoFaceFound):
        detect_face(small_face_canvas(), small_faces=False)


def test_a_large_photo_is_answered_in_its_own_pixels(astronaut) -> None:
    big = detect_face(cv2.resize(sample_portrait(), (2048, 2048), interpolation=cv2.INTER_CUBIC))
    assert np.abs(big.points[36:68] / 4.0 - astronaut.points[36:68]).mean() < 1.0
    assert abs(big.box[0] / 4.0 - astronaut.box[0]) < 4


def test_every_model_file_matches_its_provenance_record() -> None:
    for name, record in records().items():
        assert verified_path(name).stat().st_size == record.size_bytes
        assert record.licence == "Apache-2.0" and record.path_in_source.startswith("mediapipe/modules/")


def _copy_models(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(MODELS_DIR, target)
    return target


def test_a_model_file_whose_bytes_changed_is_refused_before_it_runs(tmp_path: Path) -> None:
    models = _copy_models(tmp_path)
    path = models / "face_landmark.tflite"
    data_ = bytearray(path.read_bytes())
    data_[len(data_) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data_))
    with pytest.raises(ModelFileInvalid) as caught:
        TfliteModel("face_landmark.tflite", models_dir=models)
    assert caught.value.code == "MODEL_FILE_INVALID"
    assert "face_landmark.tflite" in caught.value.message and "does not match" in caught.value.message


def test_a_missing_model_file_or_record_is_refused_with_its_name(tmp_path: Path) -> None:
    models = _copy_models(tmp_path)
    (models / "iris_landmark.tflite").unlink()
    with pytest.raises(ModelFileInvalid, match=r"iris_landmark\.tflite is missing"):
        verified_path("iris_landmark.tflite", models)
    with pytest.raises(ModelFileInvalid, match="no provenance record"):
        verified_path("face_landmark_with_attention.tflite", models)
    unrecorded = shutil.copytree(models, tmp_path / "unrecorded")
    (unrecorded / RECORD_FILE).unlink()
    with pytest.raises(ModelFileInvalid, match=re.escape(RECORD_FILE)):
        records(unrecorded)
