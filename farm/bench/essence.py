"""``farm bench essence``: build, load and render cost of the Essence engine, as one JSON object.

Measures on the sample portrait at ``--size`` (default 512x512): pack build time, pack load time,
render ms per frame (median, p95) of one session pinned to one core while it speaks ``--seconds``,
sessions per core at 25 fps (render only), and resident memory per extra session (RSS growth over
``--extra-sessions``, default 20, open, rendering sessions). With ``--sheet PATH`` it also writes a PNG
contact sheet: idle frames, speech with different mouth shapes, and every gesture. ``--out`` also
writes the JSON.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from farm.bench.common import finish, parse_args, percentile, speech_like
from farm.render.base import AvatarSource
from farm.render.essence import EssenceEngine, EssenceRenderer, LoadedAvatar, build_pack, sample_portrait

EXTRA_SESSIONS = 20


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _one_core() -> None:
    """Pin this process to one core (and OpenCV to one thread) for the render measurements."""
    import cv2

    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _render_costs(avatar: LoadedAvatar, seconds: float) -> list[float]:
    renderer = EssenceRenderer(avatar, "bench")
    renderer.push_audio(speech_like(seconds), 16_000)
    renderer.flush()
    costs = []
    frames = int(seconds * 25)
    for i in range(frames):
        if i == frames // 3:
            renderer.trigger("head_tilt")
        started = time.perf_counter()
        renderer.next_frame()
        costs.append((time.perf_counter() - started) * 1000.0)
    return costs


def _session_memory(avatar: LoadedAvatar, extra_sessions: int) -> tuple[float, float]:
    """(RSS growth, traced Python allocations) per extra session, in MB, with 4 s of queued speech."""
    import tracemalloc

    warm = EssenceRenderer(avatar, "warm")
    warm.push_audio(speech_like(2.0), 16_000)
    for _ in range(130):
        warm.next_frame()  # touch every idle page once, so only per-session memory grows below
    audio = speech_like(4.0)
    before = _rss_mb()
    tracemalloc.start()
    sessions = [EssenceRenderer(avatar, f"s{i}") for i in range(extra_sessions)]
    for renderer in sessions:
        renderer.push_audio(audio, 16_000)
    for _ in range(10):
        for renderer in sessions:
            renderer.next_frame()
    traced, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (_rss_mb() - before) / extra_sessions, traced / 1e6 / extra_sessions


def run(
    *,
    sheet: Path | None = None,
    seconds: float = 10.0,
    size: int = 512,
    extra_sessions: int = EXTRA_SESSIONS,
) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready result (and writes the contact sheet if asked)."""
    engine = EssenceEngine()
    with tempfile.TemporaryDirectory(prefix="essence-bench-") as tmp:
        pack_dir = Path(tmp) / "pack"
        started = time.perf_counter()
        build_pack(sample_portrait(), pack_dir, size=size)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        avatar = engine.load_avatar(AvatarSource("bench", pack_path=pack_dir))
        load_ms = (time.perf_counter() - started) * 1000.0
        _one_core()
        costs = _render_costs(avatar, seconds)
        rss_mb, traced_mb = _session_memory(avatar, extra_sessions)
        if sheet is not None:
            contact_sheet(avatar, sheet)
        median = float(np.median(costs))
        return {
            "bench": "essence",
            "frame_size": list(avatar.pack.frame_size),
            "frames": len(costs),
            "render_ms_median": round(median, 3),
            "render_ms_p95": round(percentile(costs, 95), 3),
            "sessions_per_core_25fps": int(40.0 // median),
            "pack_build_s": round(build_s, 2),
            "pack_load_ms": round(load_ms, 1),
            "pack_size_mb": round(engine.avatar_size_mb(avatar), 1),
            "rss_mb_per_extra_session": round(rss_mb, 2),
            "traced_mb_per_extra_session": round(traced_mb, 3),
            "extra_sessions_measured": extra_sessions,
            "sheet": str(sheet) if sheet else None,
        }


def contact_sheet(avatar: LoadedAvatar, path: Path, tile: int = 256) -> Path:
    """A PNG grid: idle, speech (varied mouth shapes), then each gesture, with captions."""
    import cv2

    tiles: list[tuple[str, np.ndarray]] = []
    idle = EssenceRenderer(avatar, "sheet-idle")
    for i in range(96):
        frame = idle.next_frame()
        if i in (0, 24, 25):
            tiles.append((f"idle {i}", frame.pixels))
    talk = EssenceRenderer(avatar, "sheet-talk")
    talk.push_audio(speech_like(4.0), 16_000)
    talk.flush()
    seen: set[float] = set()
    while talk.pending_frames() and len(seen) < 7:
        frame = talk.next_frame()
        if frame.mouth_open not in seen:
            seen.add(frame.mouth_open)
            tiles.append((f"speech open={frame.mouth_open:.2f}", frame.pixels))
    for name in avatar.gestures:
        renderer = EssenceRenderer(avatar, f"sheet-{name}")
        renderer.push_audio(speech_like(3.0, seed=1), 16_000)
        renderer.trigger(name)
        length = avatar.pack.clip_length(name)
        for i in range(length):
            frame = renderer.next_frame()
            if i in (length // 3, length // 2):
                tiles.append((f"{name} {i}", frame.pixels))
    cols = 6
    rows = -(-len(tiles) // cols)
    grid = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
    for k, (caption, image) in enumerate(tiles):
        small = cv2.resize(np.ascontiguousarray(image), (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.putText(
            small, caption, (4, tile - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA
        )
        r, c = divmod(k, cols)
        grid[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = small
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench essence", description=__doc__)
    parser.add_argument("--sheet", type=Path, default=None, help="write a PNG contact sheet here")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of speech to render")
    parser.add_argument("--size", type=int, default=512, help="frame size of the sample pack")
    parser.add_argument("--extra-sessions", type=int, default=EXTRA_SESSIONS, help="sessions for RSS growth")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parse_args(parser, argv, smoke={"seconds": 1.0, "size": 128, "extra_sessions": 2})
    result = run(sheet=args.sheet, seconds=args.seconds, size=args.size, extra_sessions=args.extra_sessions)
    finish(result, args.out, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
