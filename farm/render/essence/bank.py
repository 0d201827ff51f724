"""The mouth-shape bank and eye states an Essence pack carries: what they are and what they picture.

Each shape is rendered per avatar at build time (``synth.render_mouth``) and declared in the pack's
manifest with the numbers below, so a renderer can select or blend shapes by viseme or by
(openness, width) without knowing pixels. Visemes are the 15 of the Oculus/ARKit set (``VISEMES``);
every one of them is the primary picture of exactly one shape of a bank (``shape_for_viseme``).

People: a grid of 7 openings x (round, neutral, wide), the loudness model's space, plus five
articulated shapes the grid cannot show: pressed lips (p, b, m), the lower lip under the upper
teeth (f, v), the tongue between the teeth (th), teeth together with spread lips (s, z) and with
rounded lips (ch, sh). ``closed`` is the relaxed closed mouth of silence. Animals: the 7 openings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from farm.render.speech.visemes import VISEMES  # the viseme model's classes, one list


@dataclass(frozen=True, slots=True)
class MouthShape:
    """One shape of the bank (the manifest's ``mouth.shapes[]`` entry has exactly these keys).

    ``open``: jaw and lip opening, 0 closed .. 1 fully open (the loudness axis). ``width``: -1
    rounded/pursed .. 0 neutral .. +1 spread. ``press``: lips pressed together and thinned (0..1).
    ``tuck``: lower lip raised under the upper teeth (0..1). ``tongue``: tongue tip between the teeth
    (0..1). ``teeth``: teeth shown although the jaw is (nearly) closed. ``visemes``: the visemes this
    shape is the picture of. ``gap`` and ``span`` are measured at build time on the shape's target
    landmarks: the inner-lip gap and the corner-to-corner width, in mouth widths of the closed mouth.
    """

    name: str
    open: float
    width: float
    press: float = 0.0
    tuck: float = 0.0
    tongue: float = 0.0
    teeth: bool = False
    visemes: tuple[str, ...] = ()
    gap: float = 0.0
    span: float = 1.0

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "open": self.open,
            "width": self.width,
            "press": self.press,
            "tuck": self.tuck,
            "tongue": self.tongue,
            "teeth": self.teeth,
            "visemes": list(self.visemes),
            "gap": round(self.gap, 4),
            "span": round(self.span, 4),
        }

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> MouthShape:
        """The shape a manifest entry declares (raises KeyError/TypeError/ValueError when malformed)."""
        return cls(
            name=str(entry["name"]),
            open=float(entry["open"]),
            width=float(entry["width"]),
            press=float(entry["press"]),
            tuck=float(entry["tuck"]),
            tongue=float(entry["tongue"]),
            teeth=bool(entry["teeth"]),
            visemes=tuple(str(v) for v in entry["visemes"]),
            gap=float(entry["gap"]),
            span=float(entry["span"]),
        )


OPENINGS = (
    ("closed", 0.0),
    ("slight", 0.15),
    ("small", 0.3),
    ("half", 0.45),
    ("mid", 0.6),
    ("open", 0.8),
    ("full", 1.0),
)
WIDTHS = (("round", -1.0), ("", 0.0), ("wide", 1.0))

_PERSON_VISEMES = {"closed": ("sil",), "slight": ("nn",), "small": ("DD",), "half": ("kk",), "full": ("aa",),
                   "small_round": ("RR",), "mid_wide": ("E",), "small_wide": ("ih",), "mid_round": ("oh",),
                   "slight_round": ("ou",)}  # fmt: skip
_ARTICULATED = (
    MouthShape("pressed", 0.0, 0.0, press=1.0, visemes=("PP",)),
    MouthShape("ff", 0.08, 0.15, tuck=1.0, teeth=True, visemes=("FF",)),
    MouthShape("th", 0.2, 0.1, tongue=1.0, teeth=True, visemes=("TH",)),
    MouthShape("ss", 0.1, 0.5, teeth=True, visemes=("SS",)),
    MouthShape("ch", 0.18, -0.5, teeth=True, visemes=("CH",)),
)
_ANIMAL_VISEMES = {"closed": ("sil", "PP", "FF"), "slight": ("SS", "TH", "nn", "ou", "CH"),
                   "small": ("DD", "RR", "ih"), "half": ("kk", "E"), "mid": ("oh",), "open": (),
                   "full": ("aa",)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class EyeState:
    """One picture of the eyes: ``blink`` 0 open .. 1 shut, ``gaze`` (x, y) in -1..1 (image axes)."""

    name: str
    blink: float = 0.0
    gaze: tuple[float, float] = (0.0, 0.0)

    def manifest(self) -> dict[str, Any]:
        return {"name": self.name, "blink": self.blink, "gaze": list(self.gaze)}

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> EyeState:
        x, y = entry["gaze"]
        return cls(str(entry["name"]), float(entry["blink"]), (float(x), float(y)))


def person_bank() -> list[MouthShape]:
    """26 shapes: the 7 x 3 grid (``closed``, ``closed_round``, ..., ``full_wide``) and 5 articulated ones."""
    grid = []
    for o_name, o in OPENINGS:
        for w_name, w in WIDTHS:
            name = f"{o_name}_{w_name}" if w_name else o_name
            grid.append(MouthShape(name, o, w, visemes=_PERSON_VISEMES.get(name, ())))
    return grid + list(_ARTICULATED)


def animal_bank() -> list[MouthShape]:
    """7 openings, width 0: an animal's or a drawing's mouth only opens."""
    return [MouthShape(name, o, 0.0, visemes=_ANIMAL_VISEMES[name]) for name, o in OPENINGS]


def shape_for_viseme(shapes: Sequence[MouthShape], viseme: str) -> int:
    """Index of the shape that pictures ``viseme``; raises KeyError for a name not in ``VISEMES``."""
    for index, shape in enumerate(shapes):
        if viseme in shape.visemes:
            return index
    raise KeyError(f"no shape pictures viseme {viseme!r} (visemes: {', '.join(VISEMES)})")
