"""``farm train visemes``: fit the viseme model on espeak-ng speech (torch, CPU) and write numpy weights.

Recipe (every number is a ``TrainConfig`` field, recorded in the weights' metadata):

* data: ``utterances`` training sentences (``texts``, train vocabulary) spoken by speakers drawn
  from the training accents and variants at random rate, pitch and range (``voices``), each after
  0.05-0.5 s of silence, augmented once (reverb, noise, level, channel: ``augment``), built in
  shards in fresh processes; targets are the share of each 40 ms frame each viseme covers;
* model: ``farm.render.speech.model`` (input layer over two frames, one GRU, delayed output);
* loss: cross-entropy against the soft targets, bilabial (PP) frames weighted ``pp_weight``;
* optimiser: AdamW, one-cycle learning rate, gradient norm clipped at 1, minibatches of whole
  utterances padded and masked; torch seeded and held to ``threads`` threads so a run repeats.

The held-out check at the end uses the held-out accents, variants and vocabulary
(``farm bench lipsync`` is the full metric).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm.render.speech.features import FEATURES
from farm.render.speech.model import FORMAT, WEIGHTS_PATH, VisemeModel, signature
from farm.render.speech.training.corpus import training_set
from farm.render.speech.visemes import N_VISEMES, PP, VISEMES

Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainConfig:
    utterances: int = 2000
    heldout_utterances: int = 100
    epochs: int = 10
    batch: int = 48
    learning_rate: float = 5e-3
    hidden_in: int = 128
    hidden: int = 128
    delay_frames: int = 2
    pp_weight: float = 2.0
    seed: int = 0
    threads: int = 2
    workers: int = 2

    @classmethod
    def smoke(cls) -> TrainConfig:
        """Seconds, not minutes: proves the pipeline runs end to end (weights are not useful)."""
        return cls(utterances=8, heldout_utterances=2, epochs=1, batch=4, hidden_in=16, hidden=16, workers=0)


def _batches(
    items: list[tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    size: int,
    mean: np.ndarray,
    std: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Shuffled minibatches of utterances of similar length (sorted within pools of 8 batches, so
    little of a batch is padding), in shuffled order."""
    order = rng.permutation(len(items))
    groups: list[list[int]] = []
    for begin in range(0, len(order), 8 * size):
        ranked = sorted(order[begin : begin + 8 * size].tolist(), key=lambda i: items[i][0].shape[0])
        groups += [ranked[i : i + size] for i in range(0, len(ranked), size)]
    out = []
    for g in rng.permutation(len(groups)).tolist():
        chosen = [items[i] for i in groups[g]]
        length = max(f.shape[0] for f, _ in chosen)
        x = np.zeros((len(chosen), length, FEATURES), np.float32)
        y = np.zeros((len(chosen), length, N_VISEMES), np.float32)
        mask = np.zeros((len(chosen), length), np.float32)
        for k, (features, targets) in enumerate(chosen):
            x[k, : features.shape[0]] = (features - mean) / std
            y[k, : targets.shape[0]] = targets
            mask[k, : targets.shape[0]] = 1.0
        out.append((x, y, mask))
    return out


def _network(config: TrainConfig) -> Any:
    import torch
    from torch import nn

    class VisemeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(2 * FEATURES, config.hidden_in)
            self.gru = nn.GRU(config.hidden_in, config.hidden, batch_first=True)
            self.out = nn.Linear(config.hidden, N_VISEMES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            previous = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
            hidden = torch.relu(self.inp(torch.cat([x, previous], dim=2)))
            states, _ = self.gru(hidden)
            return self.out(states)

    return VisemeNet()


def _export(  # noqa: PLR0917
    net: Any, config: TrainConfig, mean: np.ndarray, std: np.ndarray, meta: dict[str, Any], out: Path
) -> None:
    def arr(t: Any) -> np.ndarray:
        return t.detach().cpu().numpy().astype(np.float32)

    arrays = {
        "mean": mean.astype(np.float32),
        "std": std.astype(np.float32),
        "w_in": arr(net.inp.weight),
        "b_in": arr(net.inp.bias),
        "w_ih": arr(net.gru.weight_ih_l0),
        "b_ih": arr(net.gru.bias_ih_l0),
        "w_hh": arr(net.gru.weight_hh_l0),
        "b_hh": arr(net.gru.bias_hh_l0),
        "w_out": arr(net.out.weight),
        "b_out": arr(net.out.bias),
    }
    expected = signature(config.hidden_in, config.hidden)
    if {k: tuple(v.shape) for k, v in arrays.items()} != expected:
        raise AssertionError("exported arrays do not match the model signature")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(out)


def _cached_training_set(config: TrainConfig, cache_dir: Path | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The training data, read from ``cache_dir`` when a run with the same data recipe wrote it."""
    key = f"visemes-data-{config.utterances}-{config.seed}-{config.delay_frames}.npz"
    path = cache_dir / key if cache_dir is not None else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as data:
            count = int(data["count"])
            return [(data[f"x{i}"], data[f"y{i}"]) for i in range(count)]
    items = training_set(
        "train",
        config.utterances,
        config.seed,
        augmented=True,
        delay_frames=config.delay_frames,
        workers=config.workers,
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"x{i}": x for i, (x, _) in enumerate(items)} | {
            f"y{i}": y for i, (_, y) in enumerate(items)
        }
        np.savez(path.with_suffix(".tmp.npz"), count=np.asarray(len(items)), **arrays)  # type: ignore[arg-type]
        path.with_suffix(".tmp.npz").replace(path)
    return items


def train(
    config: TrainConfig, out: Path | None = None, report: Report | None = None, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Build the data (or read it from ``cache_dir``), train, write ``out``; returns a summary (timings,
    losses, held-out accuracy)."""
    import torch

    say = report or (lambda _record: None)
    out = out or WEIGHTS_PATH
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    items = _cached_training_set(config, cache_dir)
    data_s = time.perf_counter() - started
    frames = np.concatenate([f for f, _ in items])
    mean, std = frames.mean(axis=0), frames.std(axis=0) + 1e-3
    say(
        {
            "stage": "data",
            "utterances": len(items),
            "frames": int(sum(t.shape[0] for _, t in items)),
            "seconds": round(data_s, 1),
        }
    )
    net = _network(config)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    steps = config.epochs * -(-len(items) // config.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate, total_steps=steps)
    class_weight = torch.ones(N_VISEMES)
    class_weight[PP] = config.pp_weight
    rng = np.random.default_rng(config.seed)
    delay = config.delay_frames
    losses = []
    for epoch in range(config.epochs):
        total, count = 0.0, 0.0
        for x, y, mask in _batches(items, rng, config.batch, mean, std):
            logits = net(torch.from_numpy(x))[:, delay:]
            target = torch.from_numpy(y[:, : logits.shape[1]])
            weights = torch.from_numpy(mask[:, : logits.shape[1]]) * (target * class_weight).sum(dim=2)
            loss_per_frame = -(target * torch.log_softmax(logits, dim=2)).sum(dim=2)
            loss = (loss_per_frame * weights).sum() / weights.sum()
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            total += loss.item() * float(mask.sum())
            count += float(mask.sum())
        losses.append(total / max(count, 1.0))
        say(
            {
                "stage": "epoch",
                "epoch": epoch + 1,
                "loss": round(losses[-1], 4),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    train_s = time.perf_counter() - started - data_s
    meta = {
        "format": FORMAT,
        "classes": list(VISEMES),
        "hidden_in": config.hidden_in,
        "hidden": config.hidden,
        "delay_frames": delay,
        "config": asdict(config),
        "trained_on": "espeak-ng synthesised speech (farm.render.speech.training), no recorded data",
        "command": (
            f"farm train visemes --seed {config.seed} --utterances {config.utterances}"
            f" --epochs {config.epochs}"
        ),
        "torch": torch.__version__,
        "final_loss": round(losses[-1], 4) if losses else None,
    }
    _export(net, config, mean, std, meta, out)
    heldout = heldout_accuracy(VisemeModel.load(out), config)
    summary = {
        "stage": "done",
        "out": str(out),
        "data_s": round(data_s, 1),
        "train_s": round(train_s, 1),
        "heldout_frame_accuracy": round(heldout, 4),
        "losses": [round(v, 4) for v in losses],
    }
    say(summary)
    return summary


def heldout_accuracy(model: VisemeModel, config: TrainConfig) -> float:
    """Per-frame accuracy (majority viseme) on clean held-out utterances (held-out accents,
    variants and words); the seed differs from training's so no draw is shared."""
    from farm.render.speech.training.corpus import utterances

    hits, total = 0, 0
    for _, utt in utterances("heldout", config.heldout_utterances, config.seed + 1):
        predicted = model.predict(utt.audio).argmax(axis=1)
        truth = utt.targets.argmax(axis=1)
        hits += int((predicted == truth).sum())
        total += truth.shape[0]
    return hits / max(total, 1)
