"""espeak phones (IPA) → viseme spans → per-frame targets on the farm's 40 ms grid.

Mapping: each IPA symbol of a phone name maps to a viseme (``IPA_VISEMES``); a phone whose symbols
give several visemes (diphthongs "aɪ", r-coloured "ɑːɹ", syllabic "əl") is split in time, 60/40 for
two parts (the glide is mostly in the second half) and 45/30/25 for three. IPA names spell each
accent's own realisation (West Midlands "aɪ" is [ɔɪ]), so no per-voice table is needed; the one
exception is en-us [ɜː] ("bird"), which espeak writes without the r but synthesises r-coloured.
``h`` has no mouth of its own and takes the next phone's first viseme.

Timing (``refine``): espeak marks a stop at its release and a vowel after a nasal or liquid after
its onset transition. For lip-sync the closure matters, so the silent run just before a stop is
given to the stop, and a sonorant→vowel boundary moves back to where the loudness crosses halfway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from farm.infra.espeak import PAUSE, SAMPLE_RATE_HZ, Phone
from farm.render.speech.visemes import INDEX, N_VISEMES, PP, ROUNDED, SIL

FRAME_SAMPLES = 882  # one 40 ms frame at 22.05 kHz (= 640 samples at 16 kHz)

IPA_VISEMES: dict[str, str] = {
    # vowels
    "a": "aa", "æ": "aa", "ɐ": "aa", "ɑ": "aa", "ɒ": "aa", "ʌ": "aa",
    "ɛ": "E", "e": "E", "ə": "E", "ɜ": "E", "ɘ": "E",
    "ɪ": "ih", "i": "ih", "ᵻ": "ih", "ɨ": "ih",
    "ɔ": "oh", "o": "oh",
    "ʊ": "ou", "u": "ou", "ʉ": "ou", "ɵ": "ou",
    "ɚ": "RR", "ɝ": "RR",
    # consonants
    "p": "PP", "b": "PP", "m": "PP",
    "f": "FF", "v": "FF",
    "θ": "TH", "ð": "TH",
    "t": "DD", "d": "DD", "ɾ": "DD", "ʔ": "DD",
    "k": "kk", "g": "kk", "ɡ": "kk", "ŋ": "kk", "x": "kk",
    "ʃ": "CH", "ʒ": "CH",
    "s": "SS", "z": "SS",
    "n": "nn", "l": "nn", "ɫ": "nn",
    "ɹ": "RR", "r": "RR", "ɻ": "RR",
    "w": "ou", "ʍ": "ou", "j": "ih", "ʲ": "ih",
}  # fmt: skip
_NEXT = "h"  # no mouth shape of its own
_IGNORED = {"ː", "ˑ", ":", "\u0329", "\u0361", "ˈ", "ˌ", "'", ",", "%", "="}  # length, syllabic, tie, stress
_DENTAL = "\u032a"  # t̪ d̪ → TH
_VOWEL_START = set("aæɐɑɒʌɛeəɜɘɪiᵻɨɔoʊuʉɵɚɝ")
_ACCENT_OVERRIDES: dict[str, dict[str, tuple[str, ...]]] = {"en-us": {"ɜː": ("RR",), "ɜ": ("RR",)}}
_STOPS = {"p", "b", "t", "d", "k", "ɡ", "g", "tʃ", "dʒ", "t̪", "d̪", "ʔ"}
_SONORANTS = {"m", "n", "ŋ", "l", "ɹ", "r", "w", "j", "n̩", "m̩", "ɫ"}
_SHARES = {1: (1.0,), 2: (0.6, 0.4), 3: (0.45, 0.3, 0.25)}


@dataclass(frozen=True, slots=True)
class VisemeSpan:
    """A stretch of one viseme, [start, end) in samples at 22.05 kHz; ``vowel``: from a vowel."""

    viseme: int
    start: int
    end: int
    vowel: bool


def is_vowel(name: str) -> bool:
    return bool(name) and name[0] in _VOWEL_START


def visemes_of(name: str, accent: str = "") -> tuple[str, ...]:
    """The viseme sequence of one IPA phone name ("" or ``PAUSE`` → sil, "h" → ``("h",)``)."""
    if name in ("", PAUSE):
        return ("sil",)
    override = _ACCENT_OVERRIDES.get(accent, {}).get(name)
    if override:
        return override
    if name in ("tʃ", "dʒ", "t͡ʃ", "d͡ʒ"):
        return ("CH",)
    if name == _NEXT:
        return (_NEXT,)
    seq: list[str] = []
    for ch in name:
        if ch in _IGNORED:
            continue
        if ch == _DENTAL and seq:
            seq[-1] = "TH"
            continue
        viseme = IPA_VISEMES.get(ch)
        if viseme is None:
            raise KeyError(f"no viseme for IPA symbol {ch!r} in phone {name!r}")
        if not seq or seq[-1] != viseme:
            seq.append(viseme)
    return tuple(seq) or ("sil",)


def _parts(seq: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    if seq == ("E", "nn"):  # syllabic l [əl]: mostly the l
        return (("E", 0.35), ("nn", 0.65))
    shares = _SHARES.get(len(seq), tuple(1.0 / len(seq) for _ in seq))
    return tuple(zip(seq, shares, strict=True))


def viseme_spans(phones: Sequence[Phone], accent: str = "") -> list[VisemeSpan]:
    """Phones → viseme spans (multi-viseme phones split in time; ``h`` copies what follows)."""
    out: list[VisemeSpan] = []
    waiting: list[Phone] = []  # h phones waiting for the next phone's first viseme
    for i, phone in enumerate(phones):
        seq = visemes_of(phone.name, accent)
        following = phones[i + 1].name if i + 1 < len(phones) else ""
        if len(seq) > 1 and seq[-1] == "RR" and following in ("ɹ", "r"):
            seq = seq[:-1]  # the r has its own phone
        if seq == (_NEXT,):
            waiting.append(phone)
            continue
        vowel = is_vowel(phone.name)
        for h in waiting:
            out.append(VisemeSpan(INDEX[seq[0]], h.start, h.end, False))
        waiting = []
        position = phone.start
        parts = _parts(seq)
        for k, (viseme, share) in enumerate(parts):
            end = phone.end if k == len(parts) - 1 else position + round(share * (phone.end - phone.start))
            if end > position:
                out.append(VisemeSpan(INDEX[viseme], position, end, vowel))
            position = end
    out.extend(VisemeSpan(SIL, h.start, h.end, False) for h in waiting)
    return out


def _loudness_ms(pcm: np.ndarray) -> np.ndarray:
    hop = SAMPLE_RATE_HZ // 1000
    count = len(pcm) // hop
    x = pcm[: count * hop].astype(np.float64).reshape(count, hop)
    return np.sqrt((x * x).mean(axis=1))


def refine(pcm: np.ndarray, phones: Sequence[Phone], max_closure_ms: int = 120) -> list[Phone]:
    """Move stop closures and sonorant→vowel onsets to where the mouth makes them (module docstring)."""
    if len(phones) < 2 or len(pcm) < 1000:
        return list(phones)
    names = [p.name for p in phones]
    bounds = [p.start for p in phones] + [phones[-1].end]  # phone i is [bounds[i], bounds[i + 1])
    hop = SAMPLE_RATE_HZ // 1000
    level = _loudness_ms(pcm)
    quiet = level < 0.06 * max(float(np.percentile(level, 95)), 1e-9)
    smooth = np.convolve(level, np.ones(10) / 10, mode="same")
    for i in range(1, len(names)):
        k = bounds[i] // hop
        if names[i] in _STOPS:
            j = k
            low = max(bounds[i - 1] // hop + 1, k - max_closure_ms)
            while j > low and j - 1 < len(quiet) and quiet[j - 1]:
                j -= 1
            if j < k:
                after_pause = names[i - 1] == PAUSE
                bounds[i] = max(j * hop, bounds[i] - int(0.06 * SAMPLE_RATE_HZ)) if after_pause else j * hop
        elif is_vowel(names[i]) and names[i - 1] in _SONORANTS:
            bounds[i] = _vowel_onset(bounds[i - 1], bounds[i], bounds[i + 1], smooth, hop)
    return [Phone(n, a, b) for n, a, b in zip(names, bounds[:-1], bounds[1:], strict=True) if b > a]


def _vowel_onset(sonorant: int, vowel: int, end: int, smooth: np.ndarray, hop: int) -> int:
    """Where the loudness crosses halfway from the sonorant's level to the vowel's (or ``vowel``)."""
    p0, v0, v1 = sonorant // hop, vowel // hop, end // hop
    if v0 - p0 < 10 or v1 - v0 < 10:
        return vowel
    low = float(np.median(smooth[p0 : p0 + (v0 - p0) // 2]))
    high = float(np.median(smooth[v0:v1]))
    if high < 1.5 * low:
        return vowel
    search_from = p0 + (v0 - p0) // 3  # keep at least a third of the sonorant
    above = np.nonzero(smooth[search_from:v0] > 0.5 * (low + high))[0]
    return (search_from + int(above[0])) * hop if len(above) else vowel


def frame_targets(spans: Sequence[VisemeSpan], n_samples: int) -> np.ndarray:
    """(frames, 15) float32: the share of each 40 ms frame each viseme covers (rows sum to 1).

    Frame ``i`` is [882 i, 882 (i+1)) at 22.05 kHz, i.e. [640 i, 640 (i+1)) at 16 kHz; the clip has
    ``ceil(n / 882)`` frames and whatever no span covers (the zero-padded tail) counts as sil.
    """
    count = -(-n_samples // FRAME_SAMPLES)
    cover = np.zeros((count, N_VISEMES), np.float64)
    for span in spans:
        first, last = span.start // FRAME_SAMPLES, (span.end - 1) // FRAME_SAMPLES
        for frame in range(first, min(last, count - 1) + 1):
            lo = max(span.start, frame * FRAME_SAMPLES)
            hi = min(span.end, (frame + 1) * FRAME_SAMPLES)
            cover[frame, span.viseme] += max(0, hi - lo)
    cover[:, SIL] += np.maximum(0.0, FRAME_SAMPLES - cover.sum(axis=1))
    return (cover / cover.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Events:
    """What the lip-sync metric checks, in 40 ms frames: closures (p/b/m runs) and rounded vowels.

    Each event is (first frame, last frame) inclusive, the frames its span overlaps."""

    closures: tuple[tuple[int, int], ...]
    rounded: tuple[tuple[int, int], ...]
    onsets: tuple[int, ...]  # first frame of each speech stretch after silence (for onset lag)


def events(spans: Sequence[VisemeSpan], min_pause_frames: int = 3) -> Events:
    """Closure runs (contiguous PP spans merged), rounded vowel parts and speech onsets (the first
    non-sil span after at least ``min_pause_frames`` of silence, and the first one of the clip)."""
    closures: list[tuple[int, int]] = []
    rounded: list[tuple[int, int]] = []
    onsets: list[int] = []
    previous: VisemeSpan | None = None
    speaking, silence_start = False, 0
    for span in spans:
        first, last = span.start // FRAME_SAMPLES, (span.end - 1) // FRAME_SAMPLES
        if span.viseme == PP:
            if previous is not None and previous.viseme == PP and previous.end == span.start:
                closures[-1] = (closures[-1][0], last)
            else:
                closures.append((first, last))
        elif span.viseme in ROUNDED and span.vowel:
            rounded.append((first, last))
        if span.viseme == SIL:
            if speaking:
                speaking, silence_start = False, span.start
        else:
            if not speaking and (
                not onsets or span.start - silence_start >= min_pause_frames * FRAME_SAMPLES
            ):
                onsets.append(first)
            speaking = True
        previous = span
    return Events(tuple(closures), tuple(rounded), tuple(onsets))
