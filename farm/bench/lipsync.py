"""``farm bench lipsync``: lip-sync against ground truth, visemes beside the loudness baseline.

Held-out speech only: espeak-ng accents (West Midlands, Caribbean), voice-variant families and
vocabulary never used in training (``farm.render.speech.training``), each utterance after a short
silence, with phoneme timings as ground truth. Two mouth models run on the same audio in the same
run: the viseme model (``farm.render.speech``: the default) and the loudness model it replaced
(Essence's ``LoudnessSelector``: openness from energy, width from the spectral centroid).

Stream figures (every held-out utterance):

* ``viseme_accuracy``: per 40 ms frame, the predicted viseme equals the frame's majority viseme
  (15 classes). The baseline's class is the viseme whose mouth target (open, width) is nearest its
  shape, a closed mouth counting as PP while the frame is louder than -50 dBFS and sil otherwise.
* ``closure_recall``: share of p/b/m (runs of PP) with lips closed within ±1 frame: the viseme
  stream's class is PP; the mouth after coarticulation presses (``press >= 0.5``); the baseline
  shows its closed shape. ``false_closure``: share of open-vowel frames (aa, E, oh) shown closed.
* ``rounding_recall``: share of rounded vowels (oh, ou parts) shown rounded within ±1 frame: the
  stream's class is oh/ou; the mouth's width is <= -0.3; the baseline picks a round shape.
  ``false_rounding``: share of spread-vowel frames (ih, E) shown rounded.
* ``onset_lag_ms``: mean of (first frame the mouth leaves rest - first frame of speech) over
  speech onsets after >= 120 ms of silence (positive: late).
* ``ms_per_frame``: one frame's mouth computation, streamed 640 samples at a time, one core.

Rendered figures (the first ``--rendered`` utterances): both engines render every frame with each
mouth model (Essence on the sample pack, Expression's analytic model on torch CPU); the lip gap
(inner-lip pairs) and mouth width (outer corners) are read back
from the pixels with the face rig (``farm.render.facerig.readback.MouthReader``: MediaPipe mesh
inner-lip pairs, mouth corners, per outer eye-corner distance). Closed: gap at most
``CLOSED_OVER_REST`` above the avatar's resting gap and at most ``CLOSED_GAP``; rounded: width at
most ``ROUND_SHARE`` of resting. Only frames inside an event window (and the resting frames) are
read.

Real human speech: no phoneme-labelled recording set small and permissive enough ships in a PyPI
wheel (see BENCHMARKS.md), so there is no figure on recorded speech.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.bench.common import finish, parse_args
from farm.render.audio import frame_energy, log_mel
from farm.render.base import SAMPLES_PER_FRAME
from farm.render.facerig.readback import MouthReader
from farm.render.speech.model import VisemeModel, load_model
from farm.render.speech.mouth import Coarticulation
from farm.render.speech.training.corpus import Utterance, utterances
from farm.render.speech.training.labels import FRAME_SAMPLES
from farm.render.speech.visemes import INDEX, PP, ROUNDED, SIL, TARGET_OPEN, TARGET_WIDTH, VISEMES

HELDOUT_SEED = 1000  # the held-out draw of this bench (training's own check uses seed + 1)
SPEECH_DBFS = -50.0
# Pixel thresholds (face rig readback, per inter-ocular distance), measured on the shape bank by the
# rig lane (docs in /work/notes: sil/PP read 0.040-0.044 on the smiling astronaut, 0.003-0.006 on a
# neutral face; the next smallest shape, ff, 0.009-0.022 above closed).
CLOSED_OVER_REST = 0.012  # closed: at most this above the avatar's resting gap ...
CLOSED_GAP = 0.055  # ... and at most this (a portrait resting with its lips apart must still shut them)
ROUND_SHARE = 0.97  # rounded: mouth width at most this share of resting
OPEN_VOWELS = tuple(INDEX[v] for v in ("aa", "E", "oh"))
SPREAD_VOWELS = tuple(INDEX[v] for v in ("ih", "E"))


@dataclass
class Decisions:
    """Per-frame decisions of one mouth model on one utterance."""

    viseme: np.ndarray  # (frames,) class index
    closed: np.ndarray  # (frames,) bool
    rounded: np.ndarray  # (frames,) bool
    active: np.ndarray  # (frames,) bool: the mouth is away from rest


@dataclass
class Tally:
    """Counts summed over utterances."""

    frames: int = 0
    correct: int = 0
    closures: int = 0
    closed: int = 0
    rounded_events: int = 0
    rounded: int = 0
    open_vowel_frames: int = 0
    false_closed: int = 0
    spread_frames: int = 0
    false_rounded: int = 0
    lags: list[float] = field(default_factory=list)

    def add(self, utt: Utterance, d: Decisions | None, closed: np.ndarray, rounded: np.ndarray) -> None:
        truth = utt.targets.argmax(axis=1)
        share = utt.targets.max(axis=1)
        events = utt.events
        if d is not None:
            self.frames += truth.shape[0]
            self.correct += int((d.viseme == truth).sum())
            self.lags += _onset_lags(events.onsets, d.active)
        for first, last in events.closures:
            self.closures += 1
            self.closed += bool(closed[max(0, first - 1) : last + 2].any())
        for first, last in events.rounded:
            self.rounded_events += 1
            self.rounded += bool(rounded[max(0, first - 1) : last + 2].any())
        open_vowel = np.isin(truth, OPEN_VOWELS) & (share >= 0.75)
        spread = np.isin(truth, SPREAD_VOWELS) & (share >= 0.75)
        self.open_vowel_frames += int(open_vowel.sum())
        self.false_closed += int((closed & open_vowel).sum())
        self.spread_frames += int(spread.sum())
        self.false_rounded += int((rounded & spread).sum())

    def figures(self, *, stream: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "closure_recall": _ratio(self.closed, self.closures),
            "false_closure": _ratio(self.false_closed, self.open_vowel_frames),
            "rounding_recall": _ratio(self.rounded, self.rounded_events),
            "false_rounding": _ratio(self.false_rounded, self.spread_frames),
            "closures": self.closures,
            "rounded_vowels": self.rounded_events,
        }
        if stream:
            out["viseme_accuracy"] = _ratio(self.correct, self.frames)
            out["onset_lag_ms"] = round(float(np.mean(self.lags)), 1) if self.lags else None
            out["onsets"] = len(self.lags)
            out["frames"] = self.frames
        return out


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _onset_lags(onsets: Sequence[int], active: np.ndarray, before: int = 4, after: int = 10) -> list[float]:
    lags = []
    for onset in onsets:
        if onset < before:
            continue
        window = active[onset - before : onset + after + 1]
        hits = np.nonzero(window)[0]
        if hits.size and not active[onset - before]:
            lags.append(float((hits[0] - before) * 40))
    return lags


# ---------------------------------------------------------------------------- mouth models
def viseme_decisions(model: VisemeModel, audio: np.ndarray) -> tuple[Decisions, Decisions]:
    """(the raw stream's decisions, the coarticulated mouth's decisions) of the viseme model."""
    probs = model.predict(audio)
    classes = probs.argmax(axis=1)
    stream = Decisions(classes, classes == PP, np.isin(classes, ROUNDED), classes != SIL)
    coarticulation = Coarticulation()
    poses = [coarticulation.step(row) for row in probs]
    press = np.array([p.press for p in poses])
    width = np.array([p.width for p in poses])
    opening = np.array([p.open for p in poses])
    mouth = Decisions(classes, press >= 0.5, width <= -0.3, (opening > 0) | (press >= 0.5))
    return stream, mouth


def loudness_decisions(audio: np.ndarray, shapes: np.ndarray, config: dict[str, float]) -> Decisions:
    """The baseline (Essence's loudness selector over the grid bank) mapped to the same decisions."""
    from farm.render.essence.visemes import LoudnessSelector

    selector = LoudnessSelector(shapes, config)
    energy = frame_energy(audio)
    mels = log_mel(audio)
    chosen = np.array([selector.step(float(e), m) for e, m in zip(energy, mels, strict=True)])
    opening, width = shapes[chosen, 0], shapes[chosen, 1]
    loud = 20.0 * np.log10(np.maximum(energy, 1e-9)) > SPEECH_DBFS
    targets = np.stack([TARGET_OPEN, TARGET_WIDTH], axis=1)
    nearest = np.argmin(((targets[None] - shapes[chosen][:, None]) ** 2).sum(axis=2), axis=1)
    closed = opening <= 0.0
    classes = np.where(closed, np.where(loud, PP, SIL), nearest)
    return Decisions(classes, closed, width < 0.0, ~closed)


def _grid_bank() -> np.ndarray:
    """(shapes, 2) open/width of the Essence grid bank (what the baseline selects from)."""
    from farm.render.essence.builder import shape_bank

    return np.array([[s.open, s.width] for s in shape_bank()], np.float32)


def _ms_per_frame(step: Callable[[np.ndarray], object], audio: np.ndarray) -> tuple[float, float]:
    """(CPU ms, wall ms) per frame: CPU time is what one core spends (the machine may be shared)."""
    frames = max(1, audio.shape[0] // SAMPLES_PER_FRAME)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(frames):
        step(audio[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME])
    return (
        round((time.process_time() - cpu) * 1000.0 / frames, 4),
        round((time.perf_counter() - wall) * 1000.0 / frames, 4),
    )


def _timings(
    model: VisemeModel, audio: np.ndarray, bank: np.ndarray, config: dict[str, float]
) -> dict[str, dict[str, float]]:
    from farm.render.essence.visemes import LoudnessSelector

    stream, coarticulation = model.stream(), Coarticulation()
    selector = LoudnessSelector(bank, config)

    def model_step(chunk: np.ndarray) -> None:
        stream.push(chunk)

    def viseme_step(chunk: np.ndarray) -> None:
        for row in stream.push(chunk):
            coarticulation.step(row)

    def loudness_step(chunk: np.ndarray) -> None:
        selector.step(float(frame_energy(chunk)[0]), log_mel(chunk)[0])

    viseme_step(audio[:6400])  # warm
    out = {}
    for name, step in (("viseme_model", model_step), ("visemes_with_coarticulation", viseme_step),
                       ("loudness", loudness_step)):  # fmt: skip
        stream.reset()
        cpu, wall = _ms_per_frame(step, audio)
        out[name] = {"cpu_ms": cpu, "wall_ms": wall}
    return out


# ---------------------------------------------------------------------------- rendered frames
def read_mouth(reader: MouthReader, image: np.ndarray) -> tuple[float, float]:
    """(lip gap, mouth width) of a rendered frame per inter-ocular distance (nan: no face found)."""
    reading = reader.read(image)
    return (reading.lip_gap_rel, reading.width_rel) if reading.found else (float("nan"), float("nan"))


def _needed_frames(utt: Utterance, count: int) -> set[int]:
    events = utt.events
    frames: set[int] = set(range(min(3, count)))  # resting frames in the lead-in silence
    for first, last in (*events.closures, *events.rounded):
        frames.update(range(max(0, first - 1), min(count, last + 2)))
    truth = utt.targets.argmax(axis=1)
    share = utt.targets.max(axis=1)
    vowel = np.nonzero(np.isin(truth, OPEN_VOWELS + SPREAD_VOWELS) & (share >= 0.75))[0]
    frames.update(int(i) for i in vowel[::3])  # a third of the clear vowel frames
    return frames


def pixel_decisions(frames: Sequence[np.ndarray | None], utt: Utterance) -> tuple[np.ndarray, np.ndarray]:
    """(closed, rounded) per frame read back from the pixels (frames not read count as neither).

    Calibrated on the avatar's own resting frames (the lead-in silence): closed when the lip gap is
    at most ``CLOSED_OVER_REST`` above resting and at most ``CLOSED_GAP``; rounded when the width is
    at most ``ROUND_SHARE`` of resting."""
    reader = MouthReader()
    count = len(frames)
    gaps, widths = np.full(count, np.nan), np.full(count, np.nan)
    for i in sorted(_needed_frames(utt, count)):
        image = frames[i]
        if image is not None:
            gaps[i], widths[i] = read_mouth(reader, image)
    rest = slice(0, min(3, count))
    rest_gap, rest_width = float(np.nanmedian(gaps[rest])), float(np.nanmedian(widths[rest]))
    with np.errstate(invalid="ignore"):
        closed = ~np.isnan(gaps) & (gaps <= min(rest_gap + CLOSED_OVER_REST, CLOSED_GAP))
        rounded = ~np.isnan(widths) & (widths <= ROUND_SHARE * rest_width)
    return closed, rounded


def _render_essence(
    utts: Sequence[Utterance], size: int, work: Path
) -> dict[str, list[list[np.ndarray | None]]]:
    from farm.render.essence import EssenceRenderer, LoadedAvatar, build_pack, load_pack, sample_portrait

    avatar = LoadedAvatar(load_pack(build_pack(sample_portrait(), work / "pack", size=size)))
    out: dict[str, list[list[np.ndarray | None]]] = {}
    for mouth in ("visemes", "loudness"):
        clips = []
        for k, utt in enumerate(utts):
            renderer = EssenceRenderer(avatar, f"bench-{mouth}-{k}", mouth=mouth)
            renderer.push_audio(utt.audio, 16_000)
            renderer.flush()
            frames: list[np.ndarray | None] = []
            needed = _needed_frames(utt, utt.targets.shape[0])
            while renderer.pending_frames():
                frame = renderer.next_frame(render=len(frames) in needed)
                frames.append(frame.image)
            clips.append(frames)
        out[mouth] = clips
    return out


def _render_expression(utts: Sequence[Utterance], size: int) -> dict[str, list[list[np.ndarray | None]]]:
    from farm.render.expression.engine import ExpressionEngine
    from farm.render.expression.renderer import ExpressionRenderer
    from farm.render.landmarks import sample_portrait

    engine = ExpressionEngine(size=size, max_batch=1, tick_s=0.001, backend="torch-cpu")
    engine.prewarm()
    try:
        avatar = engine.prepare_image(sample_portrait())
        out: dict[str, list[list[np.ndarray | None]]] = {}
        for mouth in ("visemes", "loudness"):
            clips = []
            for k, utt in enumerate(utts):
                renderer = ExpressionRenderer(
                    avatar,
                    engine.batcher.join(),
                    f"bench-{mouth}-{k}",
                    size,
                    mouth=mouth,
                )
                renderer.push_audio(utt.audio, 16_000)
                renderer.flush()
                frames: list[np.ndarray | None] = []
                needed = _needed_frames(utt, utt.targets.shape[0])
                while renderer.pending_frames():
                    frames.append(renderer.next_frame(render=len(frames) in needed).image)
                renderer.close()
                clips.append(frames)
            out[mouth] = clips
        return out
    finally:
        engine.close()


def _rendered(utts: Sequence[Utterance], size: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lipsync-bench-") as tmp:
        renders = {"essence": _render_essence(utts, size, Path(tmp))}
    try:
        renders["expression"] = _render_expression(utts, size)
    except ImportError as exc:  # torch is the `expression` extra
        results["expression"] = {"skipped": f"torch is not installed ({exc.name})"}
    for engine, by_mouth in renders.items():
        results[engine] = {}
        for mouth, clips in by_mouth.items():
            tally = Tally()
            for utt, frames in zip(utts, clips, strict=True):
                closed, rounded = pixel_decisions(frames, utt)
                tally.add(utt, None, closed, rounded)
            results[engine][mouth] = tally.figures(stream=False)
    return results


# ---------------------------------------------------------------------------- run
def _one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run(
    *, utterances_n: int = 150, rendered: int = 6, size: int = 512, seed: int = HELDOUT_SEED
) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready result."""
    from farm.render.essence.visemes import DEFAULT_CONFIG

    started = time.perf_counter()
    model = load_model()
    bank = _grid_bank()
    held = [utt for _, utt in utterances("heldout", utterances_n, seed)]
    tallies = {"visemes_stream": Tally(), "visemes_mouth": Tally(), "loudness": Tally()}
    for utt in held:
        stream, mouth = viseme_decisions(model, utt.audio)
        base = loudness_decisions(utt.audio, bank, DEFAULT_CONFIG)
        tallies["visemes_stream"].add(utt, stream, stream.closed, stream.rounded)
        tallies["visemes_mouth"].add(utt, mouth, mouth.closed, mouth.rounded)
        tallies["loudness"].add(utt, base, base.closed, base.rounded)
    _one_core()
    clip = np.concatenate([u.audio for u in held])[: 16_000 * 20]
    result: dict[str, Any] = {
        "bench": "lipsync",
        "heldout": {
            "utterances": len(held),
            "audio_s": round(sum(u.audio.shape[0] for u in held) / 16_000, 1),
            "accents": sorted({u.voice.base for u in held}),
            "seed": seed,
        },
        "model": {"delay_frames": model.delay_frames, "lookahead_ms": model.lookahead_samples / 16.0},
        "stream": {name: t.figures(stream=True) for name, t in tallies.items()},
        "ms_per_frame": _timings(model, clip, bank, DEFAULT_CONFIG),
    }
    if rendered:
        result["rendered"] = _rendered(held[:rendered], size)
        result["rendered"]["utterances"] = min(rendered, len(held))
        result["rendered"]["size"] = size
    result["frame_samples_22k"] = FRAME_SAMPLES
    result["classes"] = list(VISEMES)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench lipsync", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--utterances", type=int, default=150, help="held-out utterances (stream figures)")
    parser.add_argument("--rendered", type=int, default=6, help="of those, rendered by both engines")
    parser.add_argument("--size", type=int, default=512, help="rendered frame size")
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parse_args(parser, argv, smoke={"utterances": 3, "rendered": 1, "size": 256})
    result = run(utterances_n=args.utterances, rendered=args.rendered, size=args.size, seed=args.seed)
    if not args.json:
        print(json.dumps(result, indent=2))
    finish(result, args.out, smoke=args.smoke)  # the last line: the JSON, on one line
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
