"""Real-time runs of the whole learned engine: first-frame latency and late frames at N sessions.

Unlike ``throughput`` (graphs timed in isolation), these drive real ``LearnedRenderer`` sessions
through the engine's batchers on the wall clock, as a worker would: each session's thread asks for
a frame every 40 ms and a frame is *late* when it arrives more than one tick after its slot (the
session runner's rule; the grid re-anchors after a late frame, so one stall counts once).

* ``first_frame_latency``: audio arrives in real time, 40 ms per 40 ms, from t0; the latency is the
  time until the first frame that carries that speech is returned. It includes the designed wait
  for the chunk and its look-ahead (285 ms of audio) plus the motion and frame compute. It also
  reports what opening a session costs on a warm engine with a prepared avatar (no extractor runs)
  and how long until that session's first (idle) frame.
* ``paced_sessions``: N sessions speaking continuously for ``seconds``: late-frame share, frame
  latency percentiles, batch sizes the batchers formed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from farm.render.base import SAMPLES_PER_FRAME
from farm.render.learned.engine import LearnedExpressionEngine
from farm.render.learned.pipeline import DeviceAvatar
from farm.render.learned.throughput import percentile

TICK_S = 0.040


def speech_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-shaped test signal (float32, 16 kHz); content does not matter to throughput."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    voice = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)), 0, None)
    return (0.2 * voice * envelope / np.abs(voice).max()).astype(np.float32)


def first_frame_latency(
    engine: LearnedExpressionEngine, avatar: DeviceAvatar, *, render: bool = True
) -> dict[str, Any]:
    """Milliseconds from the first real-time audio chunk to the first frame that carries it."""
    opened = time.perf_counter()
    renderer = engine.open_session(avatar, "first-frame")
    open_ms = (time.perf_counter() - opened) * 1000
    renderer.next_frame(render=render)
    first_idle_ms = (time.perf_counter() - opened) * 1000
    speech = speech_signal(1.0)
    for _ in range(4):  # idle a little first, as a session does before the agent speaks
        renderer.next_frame(render=render)
    started = time.perf_counter()
    stop = threading.Event()

    def feed() -> None:
        for k in range(0, speech.shape[0], SAMPLES_PER_FRAME):
            if stop.is_set():
                return
            renderer.push_audio(speech[k : k + SAMPLES_PER_FRAME], 16_000)
            time.sleep(max(0.0, started + (k + SAMPLES_PER_FRAME) / 16_000 - time.perf_counter()))
        renderer.flush()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    latency_ms, slot = None, started
    for _ in range(100):
        frame = renderer.next_frame(render=render)
        if frame.speaking:
            latency_ms = (time.perf_counter() - started) * 1000
            break
        slot += TICK_S
        time.sleep(max(0.0, slot - time.perf_counter()))
    stop.set()
    feeder.join()
    renderer.close()
    return {
        "first_frame_ms": None if latency_ms is None else round(latency_ms, 1),
        "audio_arrives": "real time, 40 ms chunks",
        "session_open_ms": round(open_ms, 2),
        "session_first_idle_frame_ms": round(first_idle_ms, 1),
        "rendered": render,
    }


def paced_sessions(
    engine: LearnedExpressionEngine, avatars: list[DeviceAvatar], sessions: int, seconds: float
) -> dict[str, Any]:
    """``sessions`` speaking sessions paced at 25 fps for ``seconds``: late frames and latencies."""
    speech = speech_signal(seconds + 2.0)
    renderers = [engine.open_session(avatars[i % len(avatars)], f"paced-{i}") for i in range(sessions)]
    for r in renderers:
        r.push_audio(speech, 16_000)
        r.flush()
    latencies: list[list[float]] = [[] for _ in range(sessions)]
    late = [0] * sessions
    start_at = time.perf_counter() + 0.2

    def drive(i: int) -> None:
        slot = start_at + i * TICK_S / max(1, sessions)  # sessions start spread over one tick
        end = start_at + seconds
        while slot < end:
            time.sleep(max(0.0, slot - time.perf_counter()))
            t0 = time.perf_counter()
            renderers[i].next_frame()
            done = time.perf_counter()
            latencies[i].append((done - t0) * 1000)
            if done - slot > TICK_S:
                late[i] += 1
                slot = done  # re-anchor, as the session runner does
            slot += TICK_S

    threads = [threading.Thread(target=drive, args=(i,), daemon=True) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in renderers:
        r.close()
    flat = [v for per in latencies for v in per]
    frames = len(flat)
    return {
        "sessions": sessions,
        "seconds": seconds,
        "frames": frames,
        "late_frames": sum(late),
        "late_pct": round(100.0 * sum(late) / max(1, frames), 2),
        "frame_ms_p50": round(percentile(flat, 50), 1) if flat else None,
        "frame_ms_p99": round(percentile(flat, 99), 1) if flat else None,
        "batchers": engine.batcher_stats(),
    }
