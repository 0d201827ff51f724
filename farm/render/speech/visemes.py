"""The 15 Oculus visemes and the mouth each one asks for.

``VISEMES`` is the class order of the viseme model's output (index = class id). ``TARGETS`` gives
each viseme's mouth as numbers both engines understand: ``open`` (jaw/lip opening 0..1), ``width``
(-1 rounded/pursed .. 0 neutral .. +1 spread) and ``press`` (0..1 lips pressed shut, the bilabial
closure), plus ``dominance``: how strongly the viseme holds its shape against its neighbours in the
coarticulation blend (lips must shut for p/b/m and touch the teeth for f/v; the tongue-only
consonants t/d/n/k take most of their lip shape from the vowels around them).

The shape values match the Essence shape bank's picture of each viseme (docs/essence-pack.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VISEMES: tuple[str, ...] = (
    "sil",
    "PP",
    "FF",
    "TH",
    "DD",
    "kk",
    "CH",
    "SS",
    "nn",
    "RR",
    "aa",
    "E",
    "ih",
    "oh",
    "ou",
)
N_VISEMES = len(VISEMES)
INDEX: dict[str, int] = {name: i for i, name in enumerate(VISEMES)}
SIL, PP = INDEX["sil"], INDEX["PP"]
ROUNDED: tuple[int, ...] = (INDEX["oh"], INDEX["ou"])  # rounded vowels (lip rounding)
VOWELS: tuple[int, ...] = tuple(INDEX[v] for v in ("aa", "E", "ih", "oh", "ou"))


@dataclass(frozen=True, slots=True)
class VisemeTarget:
    """The mouth one viseme asks for (see the module docstring)."""

    open: float
    width: float
    press: float = 0.0
    dominance: float = 1.0


TARGETS: dict[str, VisemeTarget] = {
    "sil": VisemeTarget(0.0, 0.0, 0.0, 0.6),  # closed and relaxed
    "PP": VisemeTarget(0.0, 0.0, 1.0, 8.0),
    "FF": VisemeTarget(0.08, 0.15, 0.0, 4.0),
    "TH": VisemeTarget(0.2, 0.1, 0.0, 1.5),
    "DD": VisemeTarget(0.3, 0.0, 0.0, 0.6),
    "kk": VisemeTarget(0.45, 0.0, 0.0, 0.5),
    "CH": VisemeTarget(0.18, -0.5, 0.0, 1.5),
    "SS": VisemeTarget(0.1, 0.5, 0.0, 1.2),
    "nn": VisemeTarget(0.15, 0.0, 0.0, 0.6),
    "RR": VisemeTarget(0.3, -1.0, 0.0, 1.2),
    "aa": VisemeTarget(1.0, 0.0, 0.0, 1.0),
    "E": VisemeTarget(0.6, 1.0, 0.0, 1.0),
    "ih": VisemeTarget(0.3, 1.0, 0.0, 1.0),
    "oh": VisemeTarget(0.6, -1.0, 0.0, 1.6),
    "ou": VisemeTarget(0.15, -1.0, 0.0, 2.0),
}

TARGET_OPEN = np.array([TARGETS[v].open for v in VISEMES], np.float32)
TARGET_WIDTH = np.array([TARGETS[v].width for v in VISEMES], np.float32)
TARGET_PRESS = np.array([TARGETS[v].press for v in VISEMES], np.float32)
DOMINANCE = np.array([TARGETS[v].dominance for v in VISEMES], np.float32)
