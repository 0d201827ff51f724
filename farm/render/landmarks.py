"""Face and 68-point landmark detection from models that ship inside installed packages.

Primary path: dlib's HOG frontal face detector plus the 68-point shape predictor carried by the
``face-recognition-models`` package (located on disk without importing the package, whose import
needs ``pkg_resources``). Fallback, only when dlib cannot be imported: OpenCV's bundled Haar
cascade for the box (OpenCV 4.x ships it; 5.x does not) with a mean 68-point template fitted to it.
Nothing is downloaded; the models are loaded once per process by a cached loader.

Point indices follow the iBUG 300-W convention: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47
(36-41 is the eye on the image's left), outer lips 48-59, inner lips 60-67.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm.kernel.errors import FarmError, InvalidImage, NoFaceFound

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

# Mean 68-point shape relative to a dlib face box (x, y in box units), for the Haar fallback.
# fmt: off
_TEMPLATE = np.array([
    0.044, 0.308, 0.055, 0.44, 0.066, 0.56, 0.077, 0.692, 0.11, 0.813, 0.176, 0.923, 0.275, 1.011,
    0.374, 1.099, 0.495, 1.121, 0.626, 1.11, 0.747, 1.044, 0.857, 0.956, 0.934, 0.857, 0.989, 0.736,
    1.022, 0.604, 1.044, 0.484, 1.066, 0.352, 0.121, 0.198, 0.187, 0.132, 0.275, 0.121, 0.363, 0.143,
    0.451, 0.176, 0.67, 0.187, 0.758, 0.165, 0.846, 0.165, 0.934, 0.176, 0.989, 0.253, 0.56, 0.286,
    0.549, 0.385, 0.549, 0.473, 0.549, 0.56, 0.429, 0.604, 0.484, 0.626, 0.538, 0.637, 0.593, 0.626,
    0.648, 0.615, 0.22, 0.275, 0.275, 0.242, 0.352, 0.242, 0.407, 0.308, 0.341, 0.308, 0.264, 0.308,
    0.681, 0.33, 0.747, 0.264, 0.824, 0.264, 0.879, 0.319, 0.824, 0.341, 0.758, 0.341, 0.286, 0.692,
    0.374, 0.692, 0.473, 0.692, 0.538, 0.714, 0.604, 0.703, 0.692, 0.703, 0.78, 0.714, 0.692, 0.824,
    0.593, 0.868, 0.516, 0.879, 0.451, 0.868, 0.363, 0.813, 0.319, 0.714, 0.473, 0.736, 0.527, 0.747,
    0.604, 0.736, 0.747, 0.725, 0.593, 0.813, 0.527, 0.824, 0.462, 0.813,
], dtype=np.float32).reshape(68, 2)
# fmt: on


@dataclass(frozen=True, slots=True)
class FaceLandmarks:
    """One detected face: 68 landmark points (x, y) in pixels and the detector's box."""

    points: np.ndarray  # (68, 2) float32
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive right/bottom
    score: float = 0.0
    method: str = "dlib"  # "dlib" | "haar-template"

    @property
    def jaw(self) -> np.ndarray:
        return self.points[0:17]

    @property
    def outer_lips(self) -> np.ndarray:
        return self.points[48:60]

    @property
    def inner_lips(self) -> np.ndarray:
        return self.points[60:68]

    @property
    def mouth_center(self) -> np.ndarray:
        """Mean of the 20 lip points, (x, y) float32."""
        return self.points[48:68].mean(axis=0)

    @property
    def mouth_width(self) -> float:
        """Distance between the mouth corners (points 48 and 54)."""
        return float(np.linalg.norm(self.points[54] - self.points[48]))

    @property
    def left_eye(self) -> np.ndarray:
        """Centre of the eye on the image's left (points 36-41)."""
        return self.points[36:42].mean(axis=0)

    @property
    def right_eye(self) -> np.ndarray:
        """Centre of the eye on the image's right (points 42-47)."""
        return self.points[42:48].mean(axis=0)

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.right_eye - self.left_eye))

    @property
    def nose_tip(self) -> np.ndarray:
        return self.points[30]

    @property
    def chin(self) -> np.ndarray:
        return self.points[8]

    @property
    def roll_deg(self) -> float:
        """Head roll from the eye line, degrees (positive: the right eye is lower)."""
        delta = self.right_eye - self.left_eye
        return float(np.degrees(np.arctan2(delta[1], delta[0])))


def predictor_path() -> Path:
    """Where ``face-recognition-models`` keeps the 68-point predictor (without importing it)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package face-recognition-models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_FILE


@functools.cache
def _dlib_models() -> tuple[Any, Any] | None:
    """(detector, predictor) loaded once per process, or None when dlib is unavailable."""
    try:
        import dlib
    except ImportError:
        return None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))


@functools.cache
def _haar_cascade() -> Any | None:
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        return None  # OpenCV 5 no longer bundles the cascades
    path = Path(getattr(cv2, "data").haarcascades) / "haarcascade_frontalface_default.xml"  # noqa: B009
    return cv2.CascadeClassifier(str(path)) if path.exists() else None


def as_rgb_uint8(image_rgb: np.ndarray) -> np.ndarray:
    """Any grey, RGB or RGBA image as contiguous (H, W, 3) uint8 (values clipped to 0..255)."""
    image = np.asarray(image_rgb)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InvalidImage("image must be grey or RGB(A)", shape=image.shape)
    image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def detect_face(image_rgb: np.ndarray, *, upsample: int = 1, max_side: int = 1024) -> FaceLandmarks:
    """The most confident (then largest) face in an RGB image, with 68 landmarks.

    Images larger than ``max_side`` are searched at that size (a 12-megapixel photo would take
    seconds otherwise); points and box are returned in the original image's pixels.
    Raises ``NoFaceFound`` when no face is detected.
    """
    image = as_rgb_uint8(image_rgb)
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1.0:
        import cv2

        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    models = _dlib_models()
    face = _detect_dlib(image, models, upsample) if models is not None else _detect_haar(image)
    if scale == 1.0:
        return face
    box = tuple(round(v / scale) for v in face.box)
    return FaceLandmarks(face.points / np.float32(scale), box, face.score, face.method)


def _detect_dlib(image: np.ndarray, models: tuple[Any, Any], upsample: int) -> FaceLandmarks:
    detector, predictor = models
    rects, scores, _ = detector.run(image, upsample, 0.0)
    if len(rects) == 0:
        raise NoFaceFound("no face found in the image")
    best = max(range(len(rects)), key=lambda i: (scores[i], rects[i].area()))
    rect = rects[best]
    shape = predictor(image, rect)
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
    box = (int(rect.left()), int(rect.top()), int(rect.right()), int(rect.bottom()))
    return FaceLandmarks(points=points, box=box, score=float(scores[best]), method="dlib")


def _detect_haar(image: np.ndarray) -> FaceLandmarks:
    cascade = _haar_cascade()
    if cascade is None:
        raise FarmError("no face detector available (dlib missing and no OpenCV Haar cascade)")
    import cv2

    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5)
    if len(faces) == 0:
        raise NoFaceFound("no face found in the image")
    x, y, w, h = max((tuple(int(v) for v in f) for f in faces), key=lambda f: f[2] * f[3])
    points = (_TEMPLATE * np.array([w, h], np.float32) + np.array([x, y], np.float32)).astype(np.float32)
    return FaceLandmarks(points=points, box=(x, y, x + w, y + h), score=0.0, method="haar-template")


def sample_portrait() -> np.ndarray:
    """The sample avatar: scikit-image's ``astronaut`` (512x512 RGB, a real portrait in a package).

    dlib finds two faces there; the real one (upper, box about (175,76)-(265,166)) scores highest.
    """
    from skimage import data

    return np.ascontiguousarray(data.astronaut())
