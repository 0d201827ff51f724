"""Training and held-out speakers: espeak-ng accents × voice variants × rate, pitch and range.

Held-out evaluation uses accents (with their own phoneme tables) and variant *families* never used
in training; near-copy variants (linda/belinda, iven1-4, steph1-3, edward/edward2, …) are held out
as whole families so no near twin leaks into training. Robotic and novelty variants are left out
of both splits; MBROLA voices are not installed (and carry their own licences).
"""

from __future__ import annotations

import functools
import random
from typing import Literal

from farm.infra.espeak import Voice, variants_dir

Split = Literal["train", "heldout"]

TRAIN_ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-us-nyc")
HELDOUT_ACCENTS = ("en-gb-x-gbcwmd", "en-029")  # West Midlands and Caribbean tables
EXCLUDED_VARIANTS = frozenset(
    {
        "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7",
        "robosoft8", "UniRobot", "anikaRobot", "announcer", "Demonic", "fast", "whisper", "whisperf",
    }
)  # fmt: skip
HELDOUT_VARIANTS = frozenset(
    {
        "f4", "aunty", "m5", "m8", "Nguyen", "iven", "iven2", "iven3", "iven4", "steph", "steph2",
        "steph3", "Mario", "Michael", "gustave", "edward", "edward2", "klatt3", "linda", "belinda",
        "Denis", "travis",
    }
)  # fmt: skip
RATE_WPM = (110, 320)
PITCH = (25, 75)
PITCH_RANGE = (30, 80)


@functools.cache
def variants(split: Split) -> tuple[str, ...]:
    """Variant names of a split; "" (the accent's own voice) is a training variant."""
    folder = variants_dir()
    names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder is not None else []
    usable = [v for v in names if v not in EXCLUDED_VARIANTS]
    if split == "heldout":
        return tuple(v for v in usable if v in HELDOUT_VARIANTS)
    return ("", *(v for v in usable if v not in HELDOUT_VARIANTS))


def accents(split: Split) -> tuple[str, ...]:
    return TRAIN_ACCENTS if split == "train" else HELDOUT_ACCENTS


def sample_voice(rng: random.Random, split: Split) -> Voice:
    """A random speaker of ``split`` (accent, variant, rate, pitch and range drawn uniformly)."""
    accent = rng.choice(accents(split))
    variant = rng.choice(variants(split) or ("",))
    return Voice(
        name=f"{accent}+{variant}" if variant else accent,
        rate_wpm=rng.randint(*RATE_WPM),
        pitch=rng.randint(*PITCH),
        pitch_range=rng.randint(*PITCH_RANGE),
    )
