"""Faces and landmarks for the builders: MediaPipe's face models (Apache-2.0) through LiteRT.

``detect_face`` returns the largest face of an image with the 68 iBUG 300-W points every builder
uses (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47 with 36-41 the eye on the image's left, outer
lips 48-59, inner lips 60-67) and MediaPipe's full 478-point mesh (``FaceLandmarks.mesh``; named
groups in ``farm.render.facerig.topology``, which also documents the 68-point mapping and its
sources). The rig itself (detection, mesh, iris; model files with their provenance and licence) is
``farm.render.facerig``; nothing is downloaded.

Small faces (a full-body photo): when the short- and full-range detectors find nothing in the whole
frame, the full-range one runs on overlapping tiles, and the mesh crop upscales the face from the
full-resolution image. Large photos are searched at ``max_side`` pixels and answered in their own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from importlib import resources

import cv2
import numpy as np

from farm.kernel.errors import InvalidImage, NoFaceFound
from farm.render.facerig import topology as topo
from farm.render.facerig.detector import Detection
from farm.render.facerig.mesh import roi_from_detection
from farm.render.facerig.rig import FaceRig

METHOD = "mediapipe"
MESH_MAX_ROI_PX = 768  # a larger face is meshed from a downscaled copy (the model's input is 192 px)

# A mean 68-point face in face-box units (x, y), for code that needs a plausible face without an
# image (the Expression model's dummy export inputs).
# fmt: off
MEAN_SHAPE_68 = np.array([
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
_TEMPLATE = MEAN_SHAPE_68  # the name farm.render.expression.model imports


@dataclass(frozen=True, slots=True)
class FaceLandmarks:
    """One face: 68 iBUG points (x, y) in pixels, the detector's box and, from the rig, the 478-point mesh.

    ``mesh`` is None for faces not found by the rig (animal mode lays 68 points around given boxes).
    """

    points: np.ndarray  # (68, 2) float32
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive right/bottom
    score: float = 0.0
    method: str = METHOD  # "mediapipe" | "user-points"
    mesh: np.ndarray | None = None  # (478, 3) float32: x, y in pixels, relative depth z

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

    def mesh_points(self, indices: tuple[int, ...]) -> np.ndarray:
        """(len(indices), 2) mesh points in pixels; raises when this face has no mesh."""
        if self.mesh is None:
            raise ValueError(f"this face ({self.method}) has no 478-point mesh")
        return self.mesh[list(indices), :2]

    def moved(self, origin: tuple[float, float], sx: float, sy: float) -> FaceLandmarks:
        """The same face after the image is cropped at ``origin`` and scaled by (sx, sy)."""
        offset = np.array(origin, np.float32)
        scale = np.array([sx, sy], np.float32)
        mesh = None
        if self.mesh is not None:
            mesh = self.mesh.copy()
            mesh[:, :2] = (mesh[:, :2] - offset) * scale
            mesh[:, 2] *= np.float32(sx)
        x0, y0, x1, y1 = self.box
        box = (
            round((x0 - origin[0]) * sx),
            round((y0 - origin[1]) * sy),
            round((x1 - origin[0]) * sx),
            round((y1 - origin[1]) * sy),
        )
        points = ((self.points - offset) * scale).astype(np.float32)
        return replace(self, points=points, box=box, mesh=mesh)


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


_local = threading.local()


def face_rig() -> FaceRig:
    """This thread's rig (its models load on first use; LiteRT interpreters are per thread)."""
    rig = getattr(_local, "rig", None)
    if rig is None:
        rig = _local.rig = FaceRig()
    return rig


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _scaled(detection: Detection, scale: float) -> Detection:
    box = tuple(float(v) * scale for v in detection.box)
    return Detection(
        (box[0], box[1], box[2], box[3]), detection.keypoints * np.float32(scale), detection.score
    )


def detect_face(image_rgb: np.ndarray, *, small_faces: bool = True, max_side: int = 1024) -> FaceLandmarks:
    """The largest face in an RGB image, with 68 iBUG points and the 478-point mesh.

    Detection runs on the image downscaled to ``max_side`` (tiles when ``small_faces`` and the
    whole frame finds nothing); the mesh runs on the full-resolution image (or a copy downscaled so
    the face's crop is at most ``MESH_MAX_ROI_PX``). Raises ``NoFaceFound``.
    """
    image = as_rgb_uint8(image_rgb)
    rig = face_rig()
    det_scale = min(1.0, max_side / max(image.shape[:2]))
    for found in rig.detect(_resized(image, det_scale), tiles=small_faces):
        detection = _scaled(found, 1.0 / det_scale)
        roi = roi_from_detection(detection)
        mesh_scale = min(1.0, MESH_MAX_ROI_PX / roi.width)
        face = rig.landmarks(
            _resized(image, mesh_scale), roi_from_detection(_scaled(detection, mesh_scale)), None
        )
        if face is not None:
            return _landmarks(face.points, detection, mesh_scale)
    raise NoFaceFound("no face found in the image")


def _landmarks(points: np.ndarray, detection: Detection, mesh_scale: float) -> FaceLandmarks:
    mesh = (points / np.float32(mesh_scale)).astype(np.float32)
    x0, y0, x1, y1 = detection.box
    box = (round(x0), round(y0), round(x1), round(y1))
    return FaceLandmarks(topo.mesh_to_ibug68(mesh), box, float(detection.score), METHOD, mesh)


def sample_portrait() -> np.ndarray:
    """The sample avatar: scikit-image's ``astronaut`` (512x512 RGB, a real portrait in a package).

    The rig finds her face at about (178, 83)-(273, 178). The PNG is read with OpenCV (the same
    pixels as ``skimage.data.astronaut()``): importing skimage.io costs a worker's prewarm ~0.4 s.
    """
    path = resources.files("skimage.data") / "astronaut.png"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"scikit-image's sample portrait is missing: {path}")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
