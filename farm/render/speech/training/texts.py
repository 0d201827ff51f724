"""Offline sentences for training and held-out evaluation, from the Debian SCOWL word lists.

Content words come from ``/usr/share/dict/{american,british}-english`` (Debian packages
``wamerican`` and ``wbritish``: SCOWL, whose notice permits use, copying, modification,
distribution and sale without fee, the copyright notice kept; nothing is copied into the repo).
Function words, number, time and year patterns are written here; espeak reads digits aloud.

Held-out texts never share a content word with training texts: each word belongs to one split by
the SHA-1 of its spelling (12.5 % held out). The generator is deterministic in (split, n, seed).
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

Split = Literal["train", "heldout"]
HELDOUT_FRACTION = 0.125
WORD_LISTS = (Path("/usr/share/dict/american-english"), Path("/usr/share/dict/british-english"))
INSTALL_HINT = "install the Debian packages wamerican and wbritish (apt-get install wamerican wbritish)"

_FUNCTION_TEXT = """
the a an this that these those my your his her its our their some any no every
of to in on at by for with from about into over under after before between through
and but or so because if when while although then than as
i you he she it we they me him us them who what which where why how
is are was were be been being has have had do does did will would can could
should may might must shall not very quite just only also even still again
"""
FUNCTION_WORDS = tuple(_FUNCTION_TEXT.split())
_WORD = re.compile(r"^[a-z]{2,14}$")


def split_of(word: str) -> Split:
    """The split a content word belongs to (stable: the first 4 bytes of its SHA-1)."""
    value = int.from_bytes(hashlib.sha1(word.encode()).digest()[:4], "big")
    return "heldout" if value < HELDOUT_FRACTION * 2**32 else "train"


@functools.cache
def vocabulary(split: Split) -> tuple[str, ...]:
    """Lower-case alphabetic content words of ``split``; FileNotFoundError with the fix if none."""
    words: set[str] = set()
    for path in WORD_LISTS:
        if path.exists():
            text = path.read_text(encoding="utf-8", errors="ignore")
            words.update(w for w in text.split() if _WORD.match(w))
    words.difference_update(FUNCTION_WORDS)
    if not words:
        raise FileNotFoundError(f"no word list under /usr/share/dict: {INSTALL_HINT}")
    return tuple(sorted(w for w in words if split_of(w) == split))


def _number(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return str(rng.randint(0, 999))
    if kind == 1:
        return f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d}"
    if kind == 2:
        return str(rng.randint(1700, 2099))
    if kind == 3:
        return f"{rng.randint(0, 99)}.{rng.randint(0, 99)}"
    return f"{rng.randint(1, 31)}{rng.choice(['st', 'nd', 'rd', 'th'])}"


def sentence(rng: random.Random, content: tuple[str, ...]) -> str:
    """One pseudo-sentence: 3-14 words, a third function words, now and then a number or a comma."""
    count = rng.randint(3, 14)
    words: list[str] = []
    for _ in range(count):
        r = rng.random()
        if r < 0.35:
            words.append(rng.choice(FUNCTION_WORDS))
        elif r < 0.97:
            words.append(rng.choice(content))
        else:
            words.append(_number(rng))
    text = " ".join(words)
    if count > 6 and rng.random() < 0.4:  # a clause break: espeak's comma pause
        cut = text.find(" ", len(text) // 2)
        if cut > 0:
            text = text[:cut] + "," + text[cut:]
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "?", "!"])


def texts(split: Split, n: int, seed: int = 0) -> Iterator[str]:
    """``n`` sentences of ``split``; deterministic in (split, n, seed)."""
    rng = random.Random(f"texts:{split}:{seed}")
    content = vocabulary(split)
    for _ in range(n):
        yield sentence(rng, content)
