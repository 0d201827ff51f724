"""Labelled speech for the viseme model: espeak-ng utterances → 16 kHz audio + per-frame targets.

An ``Utterance`` is one sentence (``texts``) spoken by one drawn speaker (``voices``), with its
viseme spans and per-frame target distribution (``labels``). ``training_set`` builds many of them
in shards, each in a fresh process (espeak's synthesiser carries state from call to call, so a
fresh process per shard is what makes a seed reproduce the same audio), augments the audio
(``augment``) and returns the model's input features and targets.
"""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from farm.infra.espeak import PAUSE, Phone, Voice, synthesize
from farm.infra.espeak import SAMPLE_RATE_HZ as ESPEAK_RATE_HZ
from farm.render.audio import to_mono_16k
from farm.render.speech.features import frame_features
from farm.render.speech.training import labels, texts, voices
from farm.render.speech.training.augment import augment

SHARD_SIZE = 64
LEAD_S = (0.05, 0.5)  # silence before each utterance: speech onsets from silence, varied frame phase


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance: 16 kHz float32 audio, targets ``(frames, 15)``, spans at 22.05 kHz."""

    text: str
    voice: Voice
    audio: np.ndarray
    targets: np.ndarray
    spans: tuple[labels.VisemeSpan, ...]
    phones: tuple[Phone, ...]

    @property
    def events(self) -> labels.Events:
        return labels.events(self.spans)


def speak(text: str, voice: Voice, lead_s: float = 0.0) -> Utterance:
    """Synthesise and label one utterance, after ``lead_s`` of silence (KeyError: a phone with no viseme)."""
    pcm, phones = synthesize(text, voice)
    lead = round(lead_s * ESPEAK_RATE_HZ)
    if lead:
        pcm = np.concatenate([np.zeros(lead, np.int16), pcm])
        phones = [Phone(PAUSE, 0, lead), *(Phone(p.name, p.start + lead, p.end + lead) for p in phones)]
    refined = labels.refine(pcm, phones)
    spans = labels.viseme_spans(refined, voice.base)
    targets = labels.frame_targets(spans, len(pcm))
    audio = to_mono_16k(pcm, ESPEAK_RATE_HZ)
    return Utterance(text, voice, audio, targets, tuple(spans), tuple(refined))


def utterances(
    split: texts.Split, n: int, seed: int, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, Utterance]]:
    """(index, utterance) for indices ``start .. stop-1`` of the deterministic (split, n, seed)
    sequence; an utterance with a phone no table maps (rare) is skipped."""
    rng = random.Random(f"voices:{split}:{seed}")
    speakers = [voices.sample_voice(rng, split) for _ in range(n)]
    leads = [rng.uniform(*LEAD_S) for _ in range(n)]
    for index, text in enumerate(texts.texts(split, n, seed)):
        if index < start:
            continue
        if stop is not None and index >= stop:
            return
        try:
            yield index, speak(text, speakers[index], leads[index])
        except KeyError:
            continue


@dataclass(frozen=True)
class ShardSpec:
    split: texts.Split
    n: int  # size of the whole sequence
    seed: int
    start: int
    stop: int
    augment: bool
    delay_frames: int


def build_shard(spec: ShardSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features with ``delay_frames`` rows of silence appended, targets) of utterances [start, stop)."""
    out = []
    for index, utt in utterances(spec.split, spec.n, spec.seed, spec.start, spec.stop):
        audio = utt.audio
        if spec.augment:
            audio = augment(audio, np.random.default_rng([spec.seed, index]))
        out.append((frame_features(audio, extra_frames=spec.delay_frames), utt.targets))
    return out


def training_set(
    split: texts.Split, n: int, seed: int, *, augmented: bool, delay_frames: int, workers: int = 2
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Build ``n`` utterances in shards of ``SHARD_SIZE``, each shard in a fresh process (``workers``
    at a time; 0: all in this process)."""
    specs = [
        ShardSpec(split, n, seed, start, min(n, start + SHARD_SIZE), augmented, delay_frames)
        for start in range(0, n, SHARD_SIZE)
    ]
    if workers <= 0:  # in this process (tests): reproducible only when this process is fresh
        return [item for spec in specs for item in build_shard(spec)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=max(1, workers), maxtasksperchild=1) as pool:
        shards = pool.map(build_shard, specs, chunksize=1)
    return [item for shard in shards for item in shard]
