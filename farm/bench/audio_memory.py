"""``farm bench audio_memory`` (or ``audio-memory``): peak memory of the longest accepted clip.

For each sample rate (default 8, 16, 44.1, 48 and 192 kHz) it writes the longest clip the API
accepts (``max_audio_s``, default from the settings) as a FLAC of low-entropy, speech-like audio: one
second of voiced syllables, then four of digital silence, repeated — a small upload that decodes to
a long clip, the case that used to exhaust memory. Each clip then goes, in a fresh child process:

- through the worker's real path (``farm.bench.file_session``): a ``SessionRunner`` with the Essence
  engine (``ModelPool``) and the worker's file-session wiring (the clip as a ``FileInput`` with the
  worker's limits, an ``Mp4Sink``);
- through the API's length probe (``media.measure_audio`` on the upload's bytes).

Each child reports its peak resident memory (VmHWM, the peak RSS of its own address space: Linux's
``ru_maxrss`` is carried over fork and exec, so it can show the parent's peak) and its resident memory
before the clip (imports, engine, avatar), so the clip's own share is visible. One JSON object;
``--out`` writes it. Target: peak RSS at most 1.5 GB per process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import av
import numpy as np

from farm.bench.common import emit, finish, parse_args, speech_like
from farm.kernel.settings import Settings

RATES_HZ = (8_000, 16_000, 44_100, 48_000, 192_000)
TARGET_PEAK_MB = 1536.0
_SPEECH_S, _PERIOD_S = 1.0, 5.0


def write_flac(path: Path, seconds: float, rate: int) -> int:
    """Write ``seconds`` of the speech-then-silence pattern at ``rate`` as mono FLAC; its size in bytes.

    Encoded one second at a time: the bench never holds the clip either."""
    voice = (speech_like(_SPEECH_S, rate, seed=rate) * 32767).astype(np.int16)
    period = np.zeros(int(_PERIOD_S * rate), np.int16)
    period[: voice.shape[0]] = voice
    total = int(seconds * rate)
    with av.open(str(path), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate)
        stream.layout = "mono"
        for begin in range(0, total, rate):
            length = min(rate, total - begin)
            offset = begin % period.shape[0]
            block = np.take(period, np.arange(offset, offset + length), mode="wrap")
            frame = av.AudioFrame.from_ndarray(block[None, :], format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.stat().st_size


def _status_mb(field: str) -> float | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1]) / 1024.0
    return None


def _peak_mb() -> float:
    """This process's peak RSS: VmHWM of its own address space. (Linux carries ``ru_maxrss`` over
    fork and exec, so a child's ru_maxrss can report its parent's peak; VmHWM starts afresh at exec.)"""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mb() -> float:
    rss = _status_mb("VmRSS")
    return rss if rss is not None else _peak_mb()


# ---------------------------------------------------------------- children
def _worker_child(clip: Path, pack: Path, settings: Settings) -> dict[str, Any]:
    """Render ``clip`` as a worker does (``farm.bench.file_session``: SessionRunner + Essence engine +
    the worker's file-session wiring)."""
    from farm.bench.file_session import FileSessions, essence_pool
    from farm.kernel.domain import ModelKind
    from farm.render.base import AvatarSource

    pool = essence_pool()
    avatar = AvatarSource(key="bench", pack_path=pack)
    sessions = FileSessions(settings, pool, avatar)
    pool.get_avatar(ModelKind.ESSENCE, avatar)  # the avatar is in the baseline
    baseline = _rss_mb()
    started = time.perf_counter()
    rendered = sessions.render(uuid.uuid4().hex, clip)
    rendered.output.unlink(missing_ok=True)
    return {
        "state": rendered.session.state.value,
        "reason": rendered.session.history[-1].reason,
        "frames": rendered.frames,
        "render_s": round(time.perf_counter() - started, 1),
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
    }


def _probe_child(clip: Path, settings: Settings) -> dict[str, Any]:
    """Measure ``clip`` as the API does: its bytes in memory, a streaming decode, no PCM kept."""
    from farm.infra import media

    data = clip.read_bytes()
    baseline = _rss_mb()
    started = time.perf_counter()
    limits = media.AudioLimits(
        max_s=settings.max_audio_s,
        max_mb=settings.max_audio_mb,
        max_sample_rate_hz=settings.max_audio_sample_rate_hz,
    )
    seconds = media.measure_audio(data, limits)
    return {
        "duration_s": round(seconds, 3),
        "probe_s": round(time.perf_counter() - started, 2),
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
    }


def _run_child(kind: str, clip: Path, pack: Path, seconds: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "farm.bench.audio_memory", "--child", kind, "--clip", str(clip)]
    argv += ["--pack", str(pack), "--seconds", str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": f"child exited {done.returncode}", "stderr_tail": done.stderr[-2000:]}
    record: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return record


# ---------------------------------------------------------------- parent
def _build_pack(work: Path, size: int) -> Path:
    from farm.render.essence import build_pack, sample_portrait

    return build_pack(sample_portrait(), work / "pack", size=size)


def _measure_rate(rate: int, seconds: float, settings: Settings, pack: Path, work: Path) -> dict[str, Any]:
    clip = work / f"clip-{rate}.flac"
    size = write_flac(clip, seconds, rate)
    row: dict[str, Any] = {
        "rate_hz": rate,
        "clip_s": seconds,
        "flac_kb": round(size / 1024, 1),
        "within_upload_limit": size <= settings.max_audio_mb * 1024 * 1024,
        "decoded_pcm_mb": round(seconds * rate * 2 / 2**20, 1),  # what one whole-clip array would be
    }
    row["worker"] = _run_child("worker", clip, pack, seconds)
    row["api_probe"] = _run_child("probe", clip, pack, seconds)
    clip.unlink()
    return row


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="farm bench audio_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="clip length (default: max_audio_s)")
    parser.add_argument(
        "--rates", default=",".join(map(str, RATES_HZ)), help="comma-separated sample rates in Hz"
    )
    parser.add_argument("--pack-size", type=int, default=256, help="Essence frame size of the avatar")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    parser.add_argument("--child", choices=("worker", "probe"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pack", type=Path, help=argparse.SUPPRESS)
    return parse_args(parser, argv, smoke={"seconds": 2.0, "rates": "192000", "pack_size": 128})


def main(argv: list[str]) -> int:
    args = _parse(argv)
    base = Settings.from_env()
    seconds = args.seconds if args.seconds is not None else base.max_audio_s
    with tempfile.TemporaryDirectory(prefix="audio-memory-") as tmp:
        settings = base.model_copy(
            update={"max_audio_s": seconds, "data_dir": Path(tmp), "output_dir": Path(tmp)}
        )
        if args.child is not None:
            if args.child == "worker":
                emit(_worker_child(args.clip, args.pack, settings))
            else:
                emit(_probe_child(args.clip, settings))
            return 0
        work = Path(tmp)
        pack = _build_pack(work, args.pack_size)
        rows = []
        for rate in (int(r) for r in args.rates.split(",")):
            row = _measure_rate(rate, seconds, settings, pack, work)
            emit({"progress": row})
            rows.append(row)
    peaks = [r[k]["peak_rss_mb"] for r in rows for k in ("worker", "api_probe") if "peak_rss_mb" in r[k]]
    failed = [r["rate_hz"] for r in rows if "error" in r["worker"] or "error" in r["api_probe"]]
    result: dict[str, Any] = {
        "bench": "audio_memory",
        "clip_s": seconds,
        "pack_size": args.pack_size,
        "rates": rows,
        "max_peak_rss_mb": max(peaks) if peaks else None,
        "target_peak_rss_mb": TARGET_PEAK_MB,
        "within_target": bool(peaks) and max(peaks) <= TARGET_PEAK_MB and not failed,
    }
    finish(result, args.out, smoke=args.smoke)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
