"""`farm bench ttff`: time to first frame, cold vs warm vs hot, with its breakdown, in one run.

Starts a private farm (embedded Redis, API, build worker; see ``farm.bench.dispatch``), builds two
sample avatars (A, B; ``--size``, default the settings' ``essence_size``), then runs three conditions,
one essence worker process at a time:

* cold: a fresh worker process per session with prewarm off (``FARM_PREWARM=false``) and the
  avatar in no cache: before each session the packs are dropped from the OS page cache
  (``posix_fadvise(DONTNEED)``), so the session pays the engine's load and warm-up (its modules'
  imports, the warm-up inference), the pack load with its checksums read from disk, and the page-in.
  The process start itself (Python, Celery, connecting) is not inside the session; it is reported
  apart as ``process_start_to_ready_s``. (The reference product's first load is about 20 s.)
* warm: one prewarmed worker with no hot set and an avatar LRU too small to keep more than one
  pack; sessions alternate A/B, so every session loads its pack (page cache warm: packs are files
  shared by every process of a node).
* hot: one prewarmed worker whose hot set (the most used agents) holds A and B; warm routing sends
  each session to its private queue; the avatar is already in its LRU.

Each session posts a 0.2 s clip (file input, MP4 sink: "sink ready" is the MP4 opened and the
input started; room joins are measured by ``farm bench room``). ``t0`` is the client's clock before
``POST /v1/sessions``; the breakdown: API accept (t0 → 201), queue wait (enqueue → claim start),
claim, model ready, avatar ready, sink ready, first frame (each a step after the previous one, worker
clock; one machine, one clock). TTFF = (ASSIGNED timestamp − t0) + first frame since the claim.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from farm.bench.common import emit, finish, parse_args, percentile, sample_clip, sample_portrait_png
from farm.client import AvatarSession, SessionInfo
from farm.infra.procs import free_port
from farm.kernel.settings import Settings
from farm.sessions.warm import REGISTRY_CACHE_S

STEPS = ("api_accept", "queue_wait", "claim", "model_ready", "avatar_ready", "sink_ready", "first_frame")
WORKER_READY_DEADLINE_S = 180.0
TARGETS = {"hot_p50_ms": 150.0, "warm_p50_ms": 400.0, "cold_over_hot": 20.0}


def drop_page_cache(pack_dir: Path) -> None:
    """Evict a pack's files from the OS page cache (no root needed), so the next read is from disk."""
    for path in pack_dir.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def breakdown(t0: float, t_api: float, session: SessionInfo) -> dict[str, float]:
    """The per-step breakdown and the total TTFF (ms) of one ENDED session."""
    timings = dict(session.raw.get("timings_ms") or {})
    assigned = next(float(h["at"]) for h in session.history if h["state"] == "ASSIGNED")
    marks = [timings["model_ready"], timings["avatar_ready"], timings["sink_ready"], timings["first_frame"]]
    steps = [marks[0], *(b - a for a, b in itertools.pairwise(marks))]
    out = {
        "api_accept": (t_api - t0) * 1000.0,
        "queue_wait": float(timings["queue_wait"]),
        "claim": float(timings["claim"]),
        **dict(zip(STEPS[3:], steps, strict=True)),
    }
    out["ttff"] = (assigned - t0) * 1000.0 + float(timings["first_frame"])
    return out


def summarize(samples: list[dict[str, float]]) -> dict[str, Any]:
    ttff = [s["ttff"] for s in samples]
    return {
        "sessions": len(samples),
        "ttff_ms": {
            "p50": round(statistics.median(ttff), 1),
            "p95": round(percentile(ttff, 95), 1),
            "max": round(max(ttff), 1),
        },
        "breakdown_p50_ms": {k: round(statistics.median(s[k] for s in samples), 2) for k in STEPS},
    }


class TtffBench:
    """One private farm, two avatars, and the three conditions."""

    def __init__(self, args: argparse.Namespace) -> None:
        from farm.infra.procs import LocalFarm

        self.root = root = Path(tempfile.mkdtemp(prefix="farm-ttff-"))
        size = {"essence_size": args.size} if args.size else {}
        self.settings = Settings.from_env(
            redis_url=None, data_dir=root / "var", output_dir=root / "out", api_port=free_port(), **size
        )
        self.local = LocalFarm(self.settings, dict(os.environ))
        self.args = args
        self.audio = sample_clip()
        self.farm: AvatarSession | None = None
        self.agents: list[str] = []
        self.packs: list[Path] = []

    # ------------------------------------------------------------ farm
    def start(self) -> None:
        from farm.infra.procs import api_url
        from farm.infra.redis_conn import connect
        from farm.tenancy.api_keys import RedisKeyStore

        url = self.local.start_redis()
        self.local.start_api()
        self.local.start_worker("build", concurrency=1)
        self.local.wait_api(deadline_s=120)
        _, secret = RedisKeyStore(connect(url)).create("bench", "ttff")
        self.farm = AvatarSession(api_url=api_url(self.settings), api_secret=secret, max_retries=0)
        portrait = sample_portrait_png()
        ids = [self.farm.create_agent(portrait).agent_id for _ in range(2)]
        for agent_id in ids:
            agent = self.farm.wait_agent(agent_id, deadline_s=600)
            if agent.status != "ready":
                raise RuntimeError(f"sample avatar build failed: {agent.raw}")
            self.agents.append(agent_id)
            self.packs.append(self.settings.pack_dir / agent_id)  # where the build task writes it

    def worker(self, name: str, env: dict[str, str]) -> tuple[Any, float]:
        """Start one essence worker; return it and the seconds from spawn to READY in the registry."""
        from farm.infra.redis_conn import connect
        from farm.sessions.registry import RedisWorkerRegistry

        started = time.monotonic()
        argv = [sys.executable, "-m", "farm.cli", "worker", "--queue", "essence", "--concurrency", "2"]
        child = self.local.spawn(name, argv, env)
        registry = RedisWorkerRegistry(connect(str(self.local.redis_url)))
        end = started + WORKER_READY_DEADLINE_S
        while time.monotonic() < end:
            self.local.check_alive()
            mine = [w for w in registry.list() if w.pid == child.process.pid]
            if mine and mine[0].state == "READY" and mine[0].warm_queue:
                ready_s = time.monotonic() - started
                time.sleep(REGISTRY_CACHE_S)  # the API's router reads the registry at most once a second
                return child, ready_s
            time.sleep(0.05)
        raise RuntimeError(f"worker {name} was not READY within {WORKER_READY_DEADLINE_S:g} s")

    def stop_worker(self, child: Any) -> None:
        child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(timeout=5)
        self.local.children.remove(child)

    def session(self, agent_id: str) -> tuple[dict[str, float], SessionInfo]:
        assert self.farm is not None
        t0 = time.time()
        created = self.farm.create_session(audio=self.audio, avatar_id=agent_id)
        t_api = time.time()
        final = self.farm.wait_session(created.session_id, deadline_s=120, poll_s=0.005)
        if final.status != "ENDED":
            failure = final.raw.get("failure")
            raise RuntimeError(f"session {created.session_id} ended {final.status}: {failure}")
        return breakdown(t0, t_api, final), final

    # ------------------------------------------------------------ conditions
    def cold(self, n: int) -> dict[str, Any]:
        samples, starts = [], []
        env = {"FARM_PREWARM": "false", "FARM_HOT_AVATARS": "0"}
        for i in range(n):
            child, ready_s = self.worker(f"worker-cold-{i}", env)
            starts.append(ready_s)
            agent = i % 2
            drop_page_cache(self.packs[agent])
            samples.append(self.session(self.agents[agent])[0])
            self.stop_worker(child)
            emit({"bench": "ttff", "condition": "cold", "progress": i + 1, "of": n})
        return {**summarize(samples), "process_start_to_ready_s": round(statistics.median(starts), 2)}

    def warm(self, n: int) -> dict[str, Any]:
        # An LRU too small for two packs: every session alternates avatars and loads its pack.
        env = {"FARM_HOT_AVATARS": "0", "FARM_AVATAR_CACHE_MB": "1"}
        return self._prewarmed("worker-warm", env, n, prime=True)

    def hot(self, n: int) -> dict[str, Any]:
        return self._prewarmed("worker-hot", {"FARM_HOT_AVATARS": "2"}, n, prime=False)

    def _prewarmed(self, name: str, env: dict[str, str], n: int, *, prime: bool) -> dict[str, Any]:
        """``n`` sessions alternating the two avatars on one prewarmed worker started with ``env``."""
        child, ready_s = self.worker(name, env)
        try:
            if prime:
                self.session(self.agents[1])  # the LRU now holds B: the first measured session loads A
            samples, routed = [], 0
            for i in range(n):
                sample, final = self.session(self.agents[i % 2])
                samples.append(sample)
                routed += final.raw.get("routed_to") is not None
        finally:
            self.stop_worker(child)
        return {**summarize(samples), "warm_routed": routed, "process_start_to_ready_s": round(ready_s, 2)}

    def close(self) -> None:
        if self.farm is not None:
            self.farm.close()
        self.local.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def report(cold: dict[str, Any], warm: dict[str, Any], hot: dict[str, Any]) -> dict[str, Any]:
    c, w, h = (x["ttff_ms"]["p50"] for x in (cold, warm, hot))
    ratios = {"cold_over_warm": round(c / w, 1), "cold_over_hot": round(c / h, 1)}
    met = {
        "hot_p50_ms": h <= TARGETS["hot_p50_ms"],
        "warm_p50_ms": w <= TARGETS["warm_p50_ms"],
        "cold_over_hot": ratios["cold_over_hot"] >= TARGETS["cold_over_hot"],
    }
    return {"ratios_p50": ratios, "targets": TARGETS, "targets_met": met}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench ttff", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30, help="sessions for warm and for hot")
    parser.add_argument("--cold-sessions", type=int, default=6, help="cold sessions (a fresh worker each)")
    parser.add_argument("--size", type=int, help="the sample avatars' frame size")
    parser.add_argument("--out", type=Path, help="also write the summary JSON here")
    args = parse_args(parser, argv, smoke={"sessions": 2, "cold_sessions": 1, "size": 128})
    if args.sessions < 1 or args.cold_sessions < 1:
        parser.error("--sessions and --cold-sessions must be positive")
    bench = TtffBench(args)
    emit({"bench": "ttff", "phase": "starting a private farm and building two sample avatars"})
    try:
        bench.start()
        started = time.monotonic()
        cold = bench.cold(args.cold_sessions)
        warm = bench.warm(args.sessions)
        hot = bench.hot(args.sessions)
        summary: dict[str, Any] = {
            "bench": "ttff",
            "model": "essence",
            "clip_s": 0.2,
            "sink": "mp4 file",
            "cold": cold,
            "warm": warm,
            "hot": hot,
            **report(cold, warm, hot),
            "wall_s": round(time.monotonic() - started, 1),
        }
        finish(summary, args.out, smoke=args.smoke)
        return 0
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
