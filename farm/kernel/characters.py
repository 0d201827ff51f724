"""What an Essence build is told about its character: mode, output framing and user-given points.

``BuildOptions`` travels with the agent record (API → Redis → build worker) and into the pack's
manifest, so a pack says how it was framed. It is pure data plus geometry checks that need only the
image's size, so the API can refuse bad points before anything is stored, and the builder checks
again (the CLI and ad-hoc builds never pass through the API).

Modes:

* ``person``: the face rig's 478-point mesh places mouth, eyelids, irises and head (the default).
* ``animal``: no face detector applies (cats, dogs, cartoon animals, mascots); the user gives the
  mouth as a box ``[x0, y0, x1, y1]`` or as outline points ``[[x, y], ...]`` and optionally the eyes,
  each a box or a centre ``[x, y]``. All coordinates are pixels of the uploaded image (after its
  EXIF orientation). The mouth opens and closes with loudness (no human lip shapes); eyes blink only
  where they were given.

Framing: ``face`` crops a square around the face (``crop_scale`` face widths on a side, 3.6 is head
and shoulders); ``full`` keeps the whole image at its aspect ratio (full or half body shots).
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from farm.kernel.errors import MouthTooSmall, PointsOutsideImage, PointsRequired, ValidationError

MIN_MOUTH_BOX_PX = 8  # smallest mouth box side (source pixels) the API accepts
MIN_MOUTH_FRAME_PX = 10  # smallest mouth width in the output frame that animates visibly
DEFAULT_CROP_SCALE = 3.6  # face-framing crop side in face widths: head and shoulders

Point = Annotated[list[float], Field(min_length=2, max_length=2)]
Box = Annotated[list[float], Field(min_length=4, max_length=4)]


class AvatarMode(enum.StrEnum):
    """How the builder finds the face."""

    PERSON = "person"  # the face rig (MediaPipe face mesh)
    ANIMAL = "animal"  # user-given mouth (and optional eyes)


class Framing(enum.StrEnum):
    """What part of the image the avatar's frames show."""

    FACE = "face"  # a square crop around the face, ``crop_scale`` face widths on a side
    FULL = "full"  # the whole image, aspect ratio kept (full- and half-body shots)


class BuildOptions(BaseModel):
    """How to build one Essence pack; stored on the agent and in the pack manifest (``build``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: AvatarMode = AvatarMode.PERSON
    framing: Framing = Framing.FACE
    crop_scale: float = Field(
        default=DEFAULT_CROP_SCALE, ge=1.5, le=20.0, description="Face framing: crop side in face widths."
    )
    size: int | None = Field(
        default=None,
        ge=128,
        le=1024,
        description="Output frame side in pixels (longer side); default: settings.",
    )
    mouth_box: Box | None = Field(
        default=None, description="Animal mode: the mouth as [x0, y0, x1, y1] pixels."
    )
    mouth_points: list[Point] | None = Field(
        default=None,
        min_length=2,
        max_length=64,
        description="Animal mode: mouth outline points [[x, y], ...].",
    )
    eyes: list[list[float]] | None = Field(
        default=None,
        max_length=2,
        description="Animal mode: up to two eyes, each [x, y] or [x0, y0, x1, y1].",
    )

    @model_validator(mode="after")
    def _consistent(self) -> BuildOptions:
        if self.mode is AvatarMode.PERSON and self.has_points:
            raise ValidationError("mouth_box, mouth_points and eyes are for mode 'animal' only")
        if self.mouth_box is not None and self.mouth_points is not None:
            raise ValidationError("give the mouth as mouth_box or mouth_points, not both")
        for eye in self.eyes or []:
            if len(eye) not in (2, 4):
                raise ValidationError("each eye is a centre [x, y] or a box [x0, y0, x1, y1]")
        if self.mouth_box is not None:
            x0, y0, x1, y1 = self.mouth_box
            if x1 <= x0 or y1 <= y0:
                raise ValidationError("mouth_box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        return self

    @property
    def has_points(self) -> bool:
        return self.mouth_box is not None or self.mouth_points is not None or bool(self.eyes)

    def mouth(self) -> tuple[float, float, float, float] | None:
        """The mouth as a box: the outline's bounding box when given as points, at least a quarter
        of its width high (two points, the corners of a closed mouth, are a valid outline)."""
        if self.mouth_box is not None:
            x0, y0, x1, y1 = self.mouth_box
            return (x0, y0, x1, y1)
        if self.mouth_points is not None:
            xs = [p[0] for p in self.mouth_points]
            ys = [p[1] for p in self.mouth_points]
            cy, half = (min(ys) + max(ys)) / 2, max(max(ys) - min(ys), 0.25 * (max(xs) - min(xs))) / 2
            return (min(xs), cy - half, max(xs), cy + half)
        return None

    def eye_boxes(self) -> list[tuple[float, float, float, float]]:
        """Eyes as boxes; a centre gets a box sized from the mouth (or from the other eye)."""
        eyes = self.eyes or []
        mouth = self.mouth()
        mouth_w = (mouth[2] - mouth[0]) if mouth is not None else 20.0
        centres = [(e[0], e[1]) if len(e) == 2 else ((e[0] + e[2]) / 2, (e[1] + e[3]) / 2) for e in eyes]
        if len(centres) == 2:
            half = 0.22 * abs(centres[1][0] - centres[0][0]) or 0.4 * mouth_w
        else:
            half = 0.4 * mouth_w
        boxes = []
        for eye, (cx, cy) in zip(eyes, centres, strict=True):
            if len(eye) == 4:
                boxes.append((eye[0], eye[1], eye[2], eye[3]))
            else:
                boxes.append((cx - half, cy - 0.6 * half, cx + half, cy + 0.6 * half))
        return boxes

    def check_image(self, width: int, height: int) -> None:
        """Refuse what cannot work on a ``width`` x ``height`` image (API and builder both call it)."""
        if self.mode is not AvatarMode.ANIMAL:
            return
        mouth = self.mouth()
        if mouth is None:
            raise PointsRequired(
                "mode 'animal' needs the mouth: give mouth_box [x0, y0, x1, y1] or mouth_points "
                "[[x, y], ...] in image pixels (no animal-face detector is installed to find it)"
            )
        raw = [self.mouth_box] if self.mouth_box else list(self.mouth_points or [])
        raw += list(self.eyes or [])
        for value in raw:
            xs, ys = value[0::2], value[1::2]
            if min(xs) < 0 or min(ys) < 0 or max(xs) > width or max(ys) > height:
                raise PointsOutsideImage(
                    f"point {value} lies outside the {width}x{height} image; "
                    "coordinates are pixels of the uploaded image, origin top-left",
                    width=width,
                    height=height,
                )
        x0, y0, x1, y1 = mouth
        if x1 - x0 < MIN_MOUTH_BOX_PX or y1 - y0 < MIN_MOUTH_BOX_PX / 2:
            raise MouthTooSmall(
                f"the mouth is {x1 - x0:g}x{y1 - y0:g} pixels; it must be at least "
                f"{MIN_MOUTH_BOX_PX}x{MIN_MOUTH_BOX_PX // 2} pixels of the image to animate"
            )
