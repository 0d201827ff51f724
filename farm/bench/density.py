"""``farm bench density``: how many room sessions one worker process holds at 25 fps.

Set-up: a real ``livekit-server`` (started here, or ``--livekit-url``), a real farm (embedded Redis,
the HTTP API, one build worker) and **one render worker process pinned to ``--worker-cores``**
(``taskset``); this process, the server, Redis and the API are pinned to the other cores, so the
worker's cores do only the worker's work. Each step runs N room sessions at once, each as a plugin
agent would start it (``POST /v1/runtime-tokens/request``), with a subscribed viewer per room that
counts the avatar's decoded frames, and an agent that streams speech continuously over
``lk.audio_stream`` (2 s segments, back to back, in real time). After ``--step-s`` seconds the agents
leave, the sessions end, and the step reports:

* ``late_pct``: frames the worker handed to the SDK more than one frame period (40 ms) after their
  25 fps tick, or skipped by the runner's grid reset, over the measured window (the worker's own
  counters, published in its registry entry every second); ``late_pct_whole_sessions`` counts the
  sessions' whole lives (joins, first frames and teardown included) from their stored timings;
* ``worker_cpu_pct`` (of one core; 100 = one core busy) and per session, ``worker_rss_mb`` and the
  growth per session over the idle, prewarmed worker;
* ``ttff_ms``: runtime-token request → first decoded frame at the room's viewer (p50/p95);
* ``viewer_fps``: decoded frames per second per viewer (what a subscriber got). Only the first
  ``--video-viewers`` rooms (2) subscribe to video; the other viewers hear only (the worker encodes
  and publishes every room's video all the same: no dynacast). On a 2-core machine the load generator
  shares one core with the server, and decoding every room's video there starved its own agents;
* ``starved_frames`` / ``starved_s_per_session``: silent frames inside a segment because the agent's
  speech had not reached the session yet (the farm's count), heard as longer speech;
  ``agent_behind_ms``: how late the agents' own chunks left, past the moment their audio was due to
  play, which tells the agents' lateness from the server's or the worker's; ``bench_cores_busy``: how
  busy the load generator's and server's cores were (1.0 = saturated, and then the voice figures
  measure the bench as much as the worker);
* ``failed`` and ``stranded`` (sessions neither ENDED nor FAILED after the agents left; must be 0);
* ``speech_stretch``: each uninterrupted 2 s segment's length as the viewer heard it, over the clip's
  (1.0 = real time; the voice is the clock, so it stays 1.0 whatever the load);
* ``interrupts``: every third segment is cut after 1 s of it was sent (agents stream twice as fast as
  speech plays, as a TTS does, so unplayed speech is queued) with ``lk.clear_buffer``: how many got their
  one ``lk.playback_finished`` with ``interrupted: true`` (``honoured`` of ``sent``), the time to that
  report at the agent, and the time until the viewer's audio fell silent (``voice_stop_ms``);
* ``admission_admits``: what the worker's own admission (measured cost, default ``worker_cpu_target``)
  would admit on its cores at this step's measured cost per session.

The bench measures raw density: the worker runs with admission relaxed (cpu target 1.0, any late
share), so every step's sessions start; ``admission_admits`` says where admission would stop.

``sessions_per_core_25fps`` = the largest N with ``late_pct`` ≤ ``--max-late-pct`` (1 %), no failed
session **and the voice intact** (``speech_stretch`` p95 within ``--max-stretch``, 5 %, of real time and
every interrupt honoured), divided by the worker's cores: frames on time with a slowed voice do not
count. ``sessions_per_core_frames_only`` is the same without the voice condition (the older figure).
``--model essence`` (default) animates the sample agent's built pack; ``--model expression`` sends
the sample portrait with each request (the GPU model, here on CPU: torch). Prints one JSON object
(``against`` names the server).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from livekit import api, rtc

from farm.bench.common import emit, finish, parse_args, sample_portrait_png, summary
from farm.bench.roomfarm import add_livekit_args, livekit_target
from farm.infra.procs import LocalFarm, free_port
from farm.infra.redis_conn import connect
from farm.kernel import names
from farm.kernel.settings import Settings
from farm.render.base import FPS
from farm.sessions.registry import RedisWorkerRegistry
from farm.tenancy.api_keys import RedisKeyStore

SEGMENT_S = 2.0
PAUSE_S = 0.6  # silence between segments, so a viewer hears each one as its own stretch of speech
CUT_EVERY = 3  # every third segment is interrupted
CUT_AT_S = 1.0
RATE = 24_000
CHUNK_S = 0.1
"""Audio per write of an agent's stream (a TTS's chunk). At 20 ms the bench's own agents could not keep
up past ~4 rooms on one core (each write is a round trip through the SDK): their speech arrived late
and the farm played it with gaps, which read as stretched speech (``agent_behind_ms``)."""
CHUNK = int(RATE * CHUNK_S)
VIDEO_VIEWERS = 2  # rooms per step whose viewer decodes video (--video-viewers)
LOUD_RMS = 1500.0  # int16 RMS of a 10 ms frame the viewer counts as speech
ADMISSION_CPU_TARGET = Settings.model_fields["worker_cpu_target"].default  # what production admits


def warble(seconds: float, rate: int = RATE) -> np.ndarray:
    """A loud warbling tone (a speech stand-in with no pauses of its own), int16 mono."""
    t = np.arange(int(seconds * rate)) / rate
    wobble = 1.0 + 0.4 * np.sin(2 * np.pi * 3.0 * t)
    return (11_000 * np.sin(2 * np.pi * 220.0 * t * wobble)).astype(np.int16)


def _token(target: Any, identity: str, room: str, kind: str, attrs: dict[str, str] | None = None) -> str:
    token = (
        api.AccessToken(target.api_key, target.api_secret)
        .with_identity(identity)
        .with_kind(kind)  # type: ignore[arg-type]
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    return (token.with_attributes(attrs) if attrs else token).to_jwt()


@dataclass
class RoomLoad:
    """One room: the agent that streams speech and the viewer that counts decoded avatar frames."""

    name: str
    video: bool = True  # the viewer subscribes to (and decodes) the avatar's video, not only its audio
    agent: rtc.Room = field(default_factory=rtc.Room)
    viewer: rtc.Room = field(default_factory=rtc.Room)
    first_frame_at: float | None = None
    frames: int = 0
    requested_at: float = 0.0
    session_id: str = ""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    levels: list[tuple[float, float]] = field(default_factory=list)  # (arrival, RMS) per 10 ms heard
    reports: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # playback_finished
    cuts: list[float] = field(default_factory=list)  # when each clear_buffer was sent
    whole: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of uncut segments
    behind: list[tuple[float, float]] = field(default_factory=list)  # (sent at, s behind real time)

    def watch(self) -> None:
        self.viewer.on("track_subscribed", self._on_track)
        self.viewer.on("track_published", self._on_published)

    def _on_published(self, publication: rtc.RemoteTrackPublication, *_: object) -> None:
        """The viewer joins with auto-subscribe off: audio always, video only where it is counted."""
        if publication.kind == rtc.TrackKind.KIND_AUDIO or self.video:
            publication.set_subscribed(True)

    def _on_track(self, track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self.tasks.append(asyncio.create_task(self._count(track)))
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            self.tasks.append(asyncio.create_task(self._listen(track)))

    async def _listen(self, track: rtc.Track) -> None:
        async for event in rtc.AudioStream(track, sample_rate=16_000, num_channels=1):
            now = time.perf_counter()
            if not self.video and self.first_frame_at is None:
                self.first_frame_at = now  # an audio-only viewer: its first frame is the first audio
            pcm = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float32)
            for part in np.array_split(pcm, max(1, pcm.size // 160)):
                self.levels.append((now, float(np.sqrt(np.mean(part * part))) if part.size else 0.0))

    def on_finished(self, data: rtc.RpcInvocationData) -> str:
        self.reports.append((time.perf_counter(), json.loads(data.payload)))
        return "ok"

    async def _count(self, track: rtc.Track) -> None:
        async for _ in rtc.VideoStream(track):
            if self.first_frame_at is None:
                self.first_frame_at = time.perf_counter()
            self.frames += 1

    async def speak(self, pcm: np.ndarray, stop: asyncio.Event) -> None:
        """Segments in real time with a pause between, every ``CUT_EVERY``-th cut after ``CUT_AT_S``."""
        segment = 0
        while not stop.is_set():
            segment += 1
            cut = segment % CUT_EVERY == 0
            writer = await self.agent.local_participant.stream_bytes(
                name=f"AUDIO_{uuid.uuid4().hex[:8]}",
                topic=names.LK_TOPIC_AUDIO_STREAM,
                destination_identities=[names.DEFAULT_AVATAR_IDENTITY],
                attributes={"sample_rate": str(RATE), "num_channels": "1"},
            )
            started = time.perf_counter()
            for i, start in enumerate(range(0, pcm.shape[0], CHUNK)):
                if stop.is_set() or (cut and i * CHUNK_S >= CUT_AT_S):  # seconds of audio sent so far
                    break
                await writer.write(pcm[start : start + CHUNK].tobytes())
                sent = time.perf_counter()  # this chunk's audio plays from started + i * CHUNK_S at best
                self.behind.append((sent, sent - started - i * CHUNK_S))
                # twice real time, as a TTS streams: an interrupt finds unplayed speech queued
                await asyncio.sleep(max(0.0, started + (i + 1) * CHUNK_S / 2 - time.perf_counter()))
            if cut:  # an agent's interrupt: the RPC while its stream is still open
                self.cuts.append(time.perf_counter())
                with contextlib.suppress(rtc.RpcError):
                    await self.agent.local_participant.perform_rpc(
                        destination_identity=names.DEFAULT_AVATAR_IDENTITY,
                        method=names.LK_RPC_CLEAR_BUFFER,
                        payload="",
                    )
            await writer.aclose()
            if stop.is_set():
                break
            if not cut:
                self.whole.append((started, time.perf_counter()))
            # wait out what is still queued at the avatar (sent twice as fast as it plays), then pause
            await asyncio.sleep((0.0 if cut else SEGMENT_S / 2) + PAUSE_S)

    def spans_s(self, since: float) -> list[float]:
        """Lengths of the stretches of speech the viewer heard after ``since`` (gaps < 0.25 s merged)."""
        spans: list[float] = []
        start = last = -1
        heard = [level for at, level in self.levels if at >= since]
        for i, level in enumerate(heard):
            if level < LOUD_RMS:
                continue
            if start < 0 or (i - last) * 0.01 > 0.25:
                if start >= 0:
                    spans.append((last - start + 1) * 0.01)
                start = i
            last = i
        if start >= 0:
            spans.append((last - start + 1) * 0.01)
        return spans

    def interrupt_figures(self, since: float) -> tuple[int, int, list[float], list[float]]:
        """(sent, honoured, ms to the interrupted report, ms until the viewer's audio fell silent)."""
        sent = [c for c in self.cuts if c >= since]
        honoured, to_report, to_silence = 0, [], []
        for i, cut in enumerate(sent):
            until = sent[i + 1] if i + 1 < len(sent) else float("inf")
            got = [at for at, r in self.reports if cut <= at < until and r.get("interrupted") is True]
            if len(got) == 1:
                honoured += 1
                to_report.append((got[0] - cut) * 1000.0)
            else:
                seen = [(round((at - cut) * 1000), r) for at, r in self.reports if cut - 2.0 <= at < until]
                emit({"bench": "density", "interrupt_not_honoured": seen})
            # the next segment starts PAUSE_S after the cut: only what was heard before it counts
            loud = [at for at, level in self.levels if cut <= at < cut + 0.8 * PAUSE_S and level >= LOUD_RMS]
            to_silence.append(((max(loud) - cut) * 1000.0) if loud else 0.0)
        return len(sent), honoured, to_report, to_silence

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.viewer.disconnect()
        with contextlib.suppress(Exception):
            await self.agent.disconnect()


@dataclass
class DensityBench:
    target: Any
    client: httpx.AsyncClient
    worker: psutil.Process
    pcm: np.ndarray
    step_s: float
    agent_id: str = ""
    model: str = "essence"
    image_b64: str = ""
    registry: Any = None  # RedisWorkerRegistry of the farm (the worker's frame counters)
    cores: set[int] = field(default_factory=lambda: {1})  # the worker's cores
    bench_cores: set[int] = field(default_factory=lambda: {0})  # this process's and the server's cores
    video_viewers: int = VIDEO_VIEWERS  # the first rooms decode video; the rest hear only

    async def step(self, n: int) -> dict[str, Any]:
        rooms = [
            RoomLoad(f"density-{n}-{uuid.uuid4().hex[:6]}-{i}", video=i < self.video_viewers)
            for i in range(n)
        ]
        watched = [r for r in rooms if r.video]
        for room in rooms:
            room.watch()
        await asyncio.gather(*(self._join(room) for room in rooms))
        await asyncio.gather(*(self._start(room) for room in rooms))
        await self._until(lambda: all(r.first_frame_at is not None for r in rooms), 60.0)
        stop = asyncio.Event()
        speakers = [asyncio.create_task(room.speak(self.pcm, stop)) for room in rooms]
        await asyncio.sleep(2.0)  # settle: every avatar talking
        cpu_before, frames_before, t0 = self._cpu_s(), [r.frames for r in rooms], time.perf_counter()
        bench_before = _busy_s(self.bench_cores)
        whole_before = [len(r.whole) for r in rooms]
        counted_before = await self._counters()
        await asyncio.sleep(self.step_s)
        cpu_s, elapsed = self._cpu_s() - cpu_before, time.perf_counter() - t0
        bench_after = _busy_s(self.bench_cores)
        bench_busy = [(b - a) / elapsed for a, b in zip(bench_before, bench_after, strict=True)]
        counted = await self._counters()
        window_frames = counted[0] - counted_before[0]
        window_late = counted[1] - counted_before[1]
        viewer_fps = [(r.frames - f) / elapsed for r, f in zip(rooms, frames_before, strict=True) if r.video]
        rss_mb = self.worker.memory_info().rss / 2**20
        stop.set()
        await asyncio.gather(*speakers, return_exceptions=True)
        await asyncio.sleep(1.0)  # the last reports and the last audio arrive
        voice = _voice_figures(rooms, t0, whole_before)
        await asyncio.gather(*(room.aclose() for room in rooms))
        sessions = await self._ended([r.session_id for r in rooms])
        frames = sum(float(s.get("timings_ms", {}).get("frames", 0.0)) for s in sessions)
        late = sum(float(s.get("timings_ms", {}).get("late_frames", 0.0)) for s in sessions)
        starved = sum(float(s.get("timings_ms", {}).get("starved_frames", 0.0)) for s in sessions)
        states = [s["status"] for s in sessions]
        return {
            "sessions": n,
            "late_pct": round(100.0 * window_late / window_frames, 3) if window_frames else None,
            "window_frames": window_frames,
            "late_pct_whole_sessions": round(100.0 * late / frames, 3) if frames else None,
            "frames": int(frames),
            "worker_cpu_pct": round(100.0 * cpu_s / elapsed, 1),
            "worker_cpu_pct_per_session": round(100.0 * cpu_s / elapsed / n, 2),
            "worker_rss_mb": round(rss_mb, 1),
            "ttff_ms": summary([(r.first_frame_at or 0.0) * 1000 - r.requested_at * 1000 for r in watched]),
            "video_viewers": len(watched),
            "viewer_fps": summary(viewer_fps, 2),
            **voice,
            # Frames inside a segment whose speech had not reached the session yet (whole sessions),
            # heard as gaps that lengthen the speech: late agents, or a late path to the worker.
            "starved_frames": int(starved),
            # How late the agents' own chunks left, past the moment their audio was due to play (0 = on
            # time; they stream at twice real time): starved frames without it are the server's or the
            # worker's lateness in receiving, not the agents'.
            "agent_behind_ms": summary(
                [max(0.0, lag) * 1000.0 for r in rooms for at, lag in r.behind if t0 <= at <= t0 + elapsed]
            ),
            "starved_s_per_session": round(starved / FPS / n, 2),
            # The load generator's and server's cores, busy share (1.0 = saturated): near 1.0 its own
            # agents and viewers are late, and the voice figures measure the bench as much as the worker.
            "bench_cores_busy": round(max(bench_busy), 2) if bench_busy else None,
            "admission_admits": int(len(self.cores) * ADMISSION_CPU_TARGET / (cpu_s / elapsed / n))
            if cpu_s > 0
            else None,
            "failed": states.count("FAILED"),
            "stranded": sum(1 for s in states if s not in ("ENDED", "FAILED")),
        }

    async def _join(self, room: RoomLoad) -> None:
        await room.agent.connect(self.target.url, _token(self.target, "agent-1", room.name, "agent"))
        room.agent.local_participant.register_rpc_method(names.LK_RPC_PLAYBACK_FINISHED, room.on_finished)
        await room.viewer.connect(
            self.target.url,
            _token(self.target, "viewer-1", room.name, "standard"),
            rtc.RoomOptions(auto_subscribe=False),
        )

    async def _start(self, room: RoomLoad) -> None:
        attrs = {names.LK_ATTR_PUBLISH_ON_BEHALF: "agent-1"}
        body = {
            "livekit_url": self.target.url,
            "livekit_token": _token(self.target, names.DEFAULT_AVATAR_IDENTITY, room.name, "agent", attrs),
            "room_name": room.name,
            "model": self.model,
        }
        if self.model == "expression":
            body["image"] = self.image_b64
        else:
            body["agent_id"] = self.agent_id
        room.requested_at = time.perf_counter()
        response = await self.client.post("/v1/runtime-tokens/request", json=body)
        response.raise_for_status()
        room.session_id = response.json()["session_id"]

    async def _ended(self, session_ids: Sequence[str], deadline_s: float = 30.0) -> list[dict[str, Any]]:
        end = time.monotonic() + deadline_s
        while True:
            sessions = [(await self.client.get(f"/v1/sessions/{sid}")).json() for sid in session_ids]
            if all(s["status"] in ("ENDED", "FAILED") for s in sessions) or time.monotonic() > end:
                return sessions
            await asyncio.sleep(0.5)

    async def _counters(self) -> tuple[int, int]:
        """(frames, late frames) from the worker's newest registry entry (published every second)."""
        await asyncio.sleep(1.1)  # a heartbeat after the moment of interest
        entries = await asyncio.to_thread(self.registry.list)
        mine = [e for e in entries if e.pid == self.worker.pid]
        return (mine[0].frames_rendered, mine[0].late_frames) if mine else (0, 0)

    def _cpu_s(self) -> float:
        times = self.worker.cpu_times()
        return float(times.user + times.system)

    @staticmethod
    async def _until(predicate: Any, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError("not every avatar's first frame reached its viewer")
            await asyncio.sleep(0.05)


def _busy_s(cores: set[int]) -> list[float]:
    """CPU seconds so far that each of ``cores`` spent running something (not idle, waiting or stolen)."""
    per_cpu = psutil.cpu_times(percpu=True)
    fields = ("user", "nice", "system", "irq", "softirq")
    present = [c for c in sorted(cores) if c < len(per_cpu)]
    return [float(sum(getattr(per_cpu[c], f, 0.0) for f in fields)) for c in present]


def _voice_figures(rooms: Sequence[RoomLoad], since: float, whole_before: Sequence[int]) -> dict[str, Any]:
    """Speech as the viewers heard it: uncut segments' length over the clip's, and the interrupts."""
    stretch: list[float] = []
    for room, before in zip(rooms, whole_before, strict=True):
        whole = len(room.whole) - before
        spans = [s for s in room.spans_s(since) if s >= 0.5 * SEGMENT_S]
        uncut = [s for s in spans if s >= CUT_AT_S + 0.3][:whole]  # cut ones last ~CUT_AT_S
        stretch.extend(s / SEGMENT_S for s in uncut)
    sent = honoured = 0
    to_report: list[float] = []
    to_silence: list[float] = []
    for room in rooms:
        n, ok, report, silence = room.interrupt_figures(since)
        sent, honoured = sent + n, honoured + ok
        to_report.extend(report)
        to_silence.extend(silence)
    return {
        "speech_stretch": summary(stretch, 3),
        "interrupts": {
            "sent": sent,
            "honoured": honoured,
            "report_ms": summary(to_report),
            "voice_stop_ms": summary(to_silence),
        },
    }


def _pin_self(worker_cores: set[int]) -> set[int]:
    """Pin this process (and what it starts next) to the cores the worker does not use."""
    others = set(os.sched_getaffinity(0)) - worker_cores
    if not others:
        raise SystemExit("--worker-cores leaves no core for the load generator and the server")
    os.sched_setaffinity(0, others)
    return others


def _farm(tmp: Path, target: Any, args: argparse.Namespace, cores: str) -> tuple[LocalFarm, str, int]:
    settings = Settings.model_validate(
        {
            "data_dir": tmp / "var",
            "output_dir": tmp / "out",
            "api_port": free_port(),
            "essence_size": args.size,
            "expression_size": args.size,
            "worker_capacity": max(args.steps),
            "livekit_url": target.url,
            "livekit_api_key": target.api_key,
            "livekit_api_secret": target.api_secret,
            "default_concurrency_limit": 100_000,
            "heartbeat_s": float(os.environ.get("DENSITY_HEARTBEAT_S", "1.0")),
            # raw density: admission would stop the steps it is here to measure (admission_admits)
            "worker_cpu_target": 1.0,
            "worker_late_share": 1.0,
            "video_codec": args.video_codec,
            "video_encoder": args.video_encoder,
        }
    )
    farm = LocalFarm(settings, dict(os.environ), log_dir=tmp / "logs")
    farm.start_redis()
    farm.start_api()
    farm.start_worker("build")
    argv = ["taskset", "-c", cores, sys.executable, "-m", "farm.cli", "worker", "--queue", args.model]
    worker = farm.spawn(f"worker-{args.model}", [*argv, "--concurrency", str(max(args.steps))])
    farm.wait_api(120)
    assert farm.redis_url is not None
    _, secret = RedisKeyStore(connect(farm.redis_url)).create("density", "bench", concurrency_limit=100_000)
    return farm, secret, worker.process.pid


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    worker_cores = {int(c) for c in args.worker_cores.split(",")}
    bench_cores = _pin_self(worker_cores)
    with (
        tempfile.TemporaryDirectory(prefix="bench-density-") as tmp,
        livekit_target(args.livekit_url, args.api_key, args.api_secret, Path(tmp)) as target,
    ):
        farm, secret, worker_pid = _farm(Path(tmp), target, args, args.worker_cores)
        try:
            base = f"http://127.0.0.1:{farm.settings.api_port}"
            async with httpx.AsyncClient(base_url=base, headers={"api-secret": secret}, timeout=30) as client:
                agent_id = await _sample_agent(client) if args.model == "essence" else ""
                await _wait_ready(client, args.model)
                idle_rss = psutil.Process(worker_pid).memory_info().rss / 2**20
                pcm = warble(SEGMENT_S)
                bench = DensityBench(target, client, psutil.Process(worker_pid), pcm, args.step_s, agent_id)
                bench.cores = worker_cores
                bench.bench_cores = bench_cores
                bench.video_viewers = args.video_viewers
                bench.model, bench.image_b64 = args.model, base64.b64encode(sample_portrait_png()).decode()
                bench.registry = RedisWorkerRegistry(connect(str(farm.redis_url)))
                for _ in range(args.warmup_steps):
                    await bench.step(1)  # warm-up: codecs, first joins
                steps = []
                for n in args.steps:
                    result = await bench.step(n)
                    result["worker_rss_growth_mb_per_session"] = round(
                        (result["worker_rss_mb"] - idle_rss) / n, 2
                    )
                    emit({"bench": "density", "progress": result})
                    steps.append(result)
                    if result["late_pct"] is not None and result["late_pct"] > 5 * args.max_late_pct:
                        break  # far past the ceiling: further steps only add load
        finally:
            farm.stop()
    frames_ok = [s for s in steps if (s["late_pct"] or 0) <= args.max_late_pct and s["failed"] == 0]
    best = max((s["sessions"] for s in frames_ok if _voice_intact(s, args.max_stretch)), default=0)
    best_frames = max((s["sessions"] for s in frames_ok), default=0)
    return {
        "bench": "density",
        "model": args.model,
        "against": target.against,
        "frame_size": args.size,
        "video_codec": args.video_codec,
        "video_encoder": args.video_encoder,
        "worker_cores": sorted(worker_cores),
        "bench_cores": sorted(bench_cores),
        "video_viewers": args.video_viewers,
        "idle_worker_rss_mb": round(idle_rss, 1),
        "steps": steps,
        "sessions_per_core_25fps": round(best / len(worker_cores), 2),
        "sessions_per_core_frames_only": round(best_frames / len(worker_cores), 2),
        "max_late_pct": args.max_late_pct,
        "max_stretch": args.max_stretch,
        "stranded": sum(s["stranded"] for s in steps),
        "target": {"sessions_per_core_25fps": 10, "late_pct": 1.0, "speech_stretch": 0.05, "stranded": 0},
    }


def _voice_intact(step: dict[str, Any], max_stretch: float) -> bool:
    """The step's voice held: uncut segments within ``max_stretch`` of real time (p95), interrupts N/N."""
    stretch = step.get("speech_stretch") or {}
    interrupts = step.get("interrupts") or {}
    if not stretch:
        return False  # no segment measured: nothing shows the voice held
    return abs(stretch["p95"] - 1.0) <= max_stretch and interrupts.get("honoured") == interrupts.get("sent")


async def _wait_ready(client: httpx.AsyncClient, model: str, deadline_s: float = 300.0) -> None:
    end = time.monotonic() + deadline_s
    while (await client.get("/v1/fleet")).json()["queues"].get(model, {}).get("ready", 0) == 0:
        if time.monotonic() > end:
            raise TimeoutError(f"no READY {model} worker after {deadline_s:g} s")
        await asyncio.sleep(0.5)


async def _sample_agent(client: httpx.AsyncClient) -> str:
    created = await client.post("/v1/agents", files={"image": ("face.png", sample_portrait_png())})
    created.raise_for_status()
    agent_id: str = created.json()["agent_id"]
    end = time.monotonic() + 180
    while (await client.get(f"/v1/agents/{agent_id}")).json()["data"]["status"] != "ready":
        if time.monotonic() > end:
            raise TimeoutError("the sample agent was not built in 180 s")
        await asyncio.sleep(0.5)
    return agent_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench density", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4, 6, 8, 10, 12, 14]
    )
    parser.add_argument(
        "--video-codec", choices=["h264", "vp8"], default="h264", help="the avatar track's codec"
    )
    parser.add_argument(
        "--video-encoder",
        choices=["sdk", "farm"],
        default="sdk",
        help="who encodes the avatar's video: the worker (pre-encoded to LiveKit) or the SDK",
    )
    parser.add_argument("--step-s", type=float, default=20.0, help="measured seconds per step")
    parser.add_argument(
        "--video-viewers",
        type=int,
        default=VIDEO_VIEWERS,
        help="rooms per step whose viewer decodes the avatar's video (viewer_fps, ttff); the others' "
        "viewers hear only: decoding every room's video on the bench's own core starves the agents",
    )
    parser.add_argument("--model", choices=["essence", "expression"], default="essence")
    parser.add_argument("--size", type=int, default=512, help="avatar frame size (square)")
    parser.add_argument("--worker-cores", default="1", help="cores the worker process is pinned to")
    parser.add_argument("--max-late-pct", type=float, default=1.0)
    parser.add_argument(
        "--max-stretch", type=float, default=0.05, help="speech_stretch p95 allowed off 1.0 (0.05 = 5 %%)"
    )
    add_livekit_args(parser)
    parser.add_argument("--warmup-steps", type=int, default=1, help="one-session steps not reported")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    smoke = {"steps": [1], "step_s": 1.0, "size": 128, "warmup_steps": 0}
    args = parse_args(parser, argv, smoke=smoke)
    finish(asyncio.run(_run(args)), args.out, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
