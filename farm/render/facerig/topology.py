"""Named point groups of MediaPipe's 478-point face mesh, and its mapping to the 68 iBUG points.

Indices 0-467 are the face mesh, 468-477 the two irises (MediaPipe's refined layout). Like dlib's,
the indices follow the image side, not anatomy: "R" below is the subject's right eye, which is on
the image's left in an unmirrored photo (MediaPipe's ``FACEMESH_RIGHT_EYE``, corners 33 and 133).

Sources (google-ai-edge/mediapipe): ``mediapipe/python/solutions/face_mesh_connections.py``
(lips, eyes, brows, face oval, irises), ``mediapipe/modules/face_landmark/tensors_to_face_landmarks
_with_attention.pbtxt`` and the iris refinement lists (468-477). Every list runs from the
image-left end to the image-right end, or from an eye's outer corner to its inner corner.
"""

from __future__ import annotations

import numpy as np

MESH_POINTS = 468
ALL_POINTS = 478

# ------------------------------------------------------------------------------------- mouth
MOUTH_CORNERS_OUTER = (61, 291)
MOUTH_CORNERS_INNER = (78, 308)
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIP_GAP_PAIRS = ((82, 87), (13, 14), (312, 317))
"""Inner upper/lower lip pairs under the cupid's bow and at the midline: the mouth's opening."""

# -------------------------------------------------------------------------------------- eyes
EYE_R_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_R_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_L_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
EYE_L_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
EYE_R_CORNERS = (33, 133)  # outer, inner
EYE_L_CORNERS = (263, 362)
EYE_OUTER_CORNERS = (33, 263)  # the inter-ocular distance of the rig

IRIS_R_CENTRE = 468
IRIS_R_CONTOUR = (469, 470, 471, 472)  # image-right edge, top, image-left edge, bottom
IRIS_L_CENTRE = 473
IRIS_L_CONTOUR = (474, 475, 476, 477)

BROW_R_UPPER = (70, 63, 105, 66, 107)
BROW_R_LOWER = (46, 53, 52, 65, 55)
BROW_L_UPPER = (300, 293, 334, 296, 336)
BROW_L_LOWER = (276, 283, 282, 295, 285)

# -------------------------------------------------------------------------------- nose, oval
NOSE_RIDGE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2)  # nasion .. tip (4) .. subnasale (2)
NOSE_TIP = 4
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
CHIN = 152

# ----------------------------------------------------------------------------- iBUG 68 <- mesh
# One tuple per iBUG 300-W point; two indices mean "the midpoint of these". iBUG 0 is on the
# image's left. Starting points: MediaPipe's contour lists and canonical mesh, and the index
# correspondence published in PeizhiYan/Mediapipe_2_Dlib_Landmarks (2024, linked from
# google-ai-edge/mediapipe issue #4490; indices compared, no code taken). Each point's candidates
# were then scored by distance to dlib's point on three portraits (astronaut, Obama, Biden) with
# left/right symmetry kept, and checked by eye on zoomed crops (proto/facerig, 2026-12-06). Where
# it differs from that table: inner lips 61/63/65/67 use 82/312/317/87 under the cupid's-bow peaks
# (81/311/402/178 were 6-8 % of the inter-ocular distance off); 49/53/55/59, nose 29, nostrils
# 31/35, the jaw and the inner brow ends use midpoints (1.4-2.7 % vs 2-5 %). The jaw is the mesh's
# weak spot: its oval sits 5-7 % IOD inside the chin silhouette that dlib traces.
IBUG68_FROM_MESH: tuple[tuple[int, ...], ...] = (
    # jaw 0-16: image left -> chin (8) -> image right
    (127,), (234,), (93, 132), (132, 58), (172,), (136, 150), (149,), (176, 148), (152,),
    (400, 377), (378,), (365, 379), (397,), (361, 288), (323, 361), (454,), (356,),
    # brows 17-21 (image left, outer -> inner) and 22-26 (inner -> outer)
    (70,), (63,), (105,), (66,), (107, 55), (336, 285), (296,), (334,), (293,), (300,),
    # nose bridge 27-30 (nasion -> tip), lower nose 31-35 (image left -> right)
    (168,), (197,), (195, 5), (4,), (240, 75), (97,), (2,), (326,), (460, 305),
    # eyes 36-41 (image-left eye from its outer corner, clockwise) and 42-47 (from its inner corner)
    (33,), (160,), (158,), (133,), (153,), (144,), (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lips 48-59: corner, upper lip to the other corner, lower lip back
    (61,), (40, 39), (37,), (0,), (267,), (269, 270), (291,), (321, 405), (314,), (17,), (84,), (91, 181),
    # inner lips 60-67: corner, upper, corner, lower
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)  # fmt: skip
assert len(IBUG68_FROM_MESH) == 68


def mesh_to_ibug68(points: np.ndarray) -> np.ndarray:
    """(468 or 478, >=2) mesh points -> (68, 2) float32 iBUG 300-W points."""
    out = np.empty((68, 2), dtype=np.float32)
    for i, indices in enumerate(IBUG68_FROM_MESH):
        out[i] = points[list(indices), :2].mean(axis=0)
    return out
