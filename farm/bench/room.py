"""``farm bench room``: runtime-token request → first avatar video frame at a viewer, and A/V offset.

Per session (``--sessions``, default 20, each in a fresh room): an agent and a viewer are already in
the room (real ``livekit`` SDK participants); the clock starts just before the bitHuman-style
``POST /v1/runtime-tokens/request`` (the real API app, in process over ASGI) and stops when the
viewer decodes the first frame of the avatar's video track. The session runs through the
production path behind the API: SessionStore (in memory) → an in-process queue that hands it to a
warm "worker" (ModelPool prewarmed with the avatar, SessionRunner, RoomSessionIo) on this event loop,
so the Celery/Redis hop (~3 ms, reference/environment-notes.md §4) is not included.

A/V offset (``--av-sessions``): the agent sends 0.6 s of silence then a loud tone; the offset is
(video onset - audio onset) at the viewer, where audio onset is the first loud audio frame and video
onset the first frame whose mouth region leaves the avatar's idle appearance (``audio_onset`` and
``MouthModel.onset``). Positive = video late. The viewer's number includes what the farm does not
control (the SFU path, and receiver jitter buffers: livekit puts each track in its own stream, so
the SDK's ``VideoStream`` does no lip-sync against audio; the model also transcodes both tracks).
Where it arises (all one clock, ``perf_counter``, on one host), per A/V session:

* ``source_av_offset_ms``: the farm's own part: when a segment's first speech frame reached the
  video encoder minus when its first audio left the audio queue.
* ``ingress_av_offset_ms``: the same onsets at the model, before any re-encode: the model's ingress
  probe (``farm/testing/lk_model/probe.py``, ``GET /debug/ingress``) hands over the decoded
  publisher frames, the same onset detection runs on them, and each onset is timed by the arrival
  of its frame's first RTP packet. ``model_decode_av_offset_ms`` times them at the model's decode
  instead; the difference (``model_audio_hold_ms``/``model_video_hold_ms``) is aiortc's receive
  jitter buffer, which holds audio for 4 more packets (~80 ms) and video for one frame (~40 ms).
* ``audio_/video_ingress_to_viewer_ms``: onset packet arrival at the model → onset at the viewer.
* ``viewer_*_jitter_buffer_ms``: the viewer's libwebrtc inbound-rtp stats over the tone
  (``Room.get_rtc_stats()`` subscriber side: Δ jitterBufferDelay / Δ jitterBufferEmittedCount; for
  audio per sample = NetEq, for video per frame), and ``viewer_video_processing_ms``
  (Δ totalProcessingDelay / Δ framesDecoded). ``av_offset_jb_corrected_ms`` = viewer offset +
  audio jitter buffer − video jitter buffer: the offset with the receiver's buffering difference
  taken out (approximate: a lip-syncing receiver aligns by RTP/RTCP timestamps, which this model
  rewrites when it re-encodes).
* ``av_offset_budget_ms``: medians of farm_source + sdk_publish_to_model_ingress +
  model_receive_jitter_buffer + model_reencode_and_viewer (these four sum to each session's viewer
  offset); of_which_viewer_jitter_buffers is the part of the last one due to the viewer's buffers.

LiveKit: by default the project's LiveKit-protocol model runs in a subprocess on ``--host``
(10.77.0.1 inside ``scripts/netns-run``: libwebrtc ignores loopback); results are then labelled
"against a LiveKit-protocol model". ``--livekit-url/--api-key/--api-secret`` use a real server.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from livekit import api, rtc

from farm import names
from farm.api.app import create_app
from farm.blobs import BlobStore
from farm.contracts import RunSessionMessage, WorkerInfo
from farm.domain import Agent, AgentStatus, ModelKind, Session
from farm.procs import free_port
from farm.render.essence import EssenceEngine, EssenceRenderer, LoadedAvatar, build_pack, sample_portrait
from farm.render.pool import ModelPool
from farm.sessions.agents import MemoryAgentStore
from farm.sessions.keys import MemoryKeyStore
from farm.sessions.memory import MemorySessionStore
from farm.sessions.registry import MemoryWorkerRegistry
from farm.sessions.runner import SessionIO, SessionRunner
from farm.sessions.wiring import AvatarResolver
from farm.settings import Settings
from farm.stream.livekit import LiveKitRoomSession, RoomInput
from farm.stream.livekit.wiring import RoomSessionIo
from farm.testing.lk_model.probe import THUMB as PROBE_THUMB
from farm.testing.lk_model.probe import decode_thumbs

AGENT_ID = "A0BENCH001"
THUMB = PROBE_THUMB  # the model's ingress probe sends thumbnails of the same size
LOUD = 1500.0  # RMS (int16 scale) above which an audio frame counts as the tone


@dataclass
class LocalWorker:
    """A SessionQueue that runs each submitted session at once on this loop (a warm worker)."""

    store: MemorySessionStore
    pool: ModelPool
    settings: Settings
    resolver: AvatarResolver
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    rooms: list[LiveKitRoomSession] = field(default_factory=list)

    def submit(self, message: RunSessionMessage) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(self._run(message)))

    async def _run(self, message: RunSessionMessage) -> None:
        lease = self.store.claim(message.session_id, "bench-worker", self.settings.lease_ttl_s)
        assert lease is not None
        room_io = RoomSessionIo(self.settings, self.pool, self.resolver)

        def io_factory(session: Session) -> SessionIO:
            io = room_io(session)
            assert isinstance(io.input, RoomInput)
            self.rooms.append(io.input.session)
            return io

        runner = SessionRunner(
            lease=lease,
            store=self.store,
            pool=self.pool,
            settings=self.settings,
            io_factory=io_factory,
            resolve_avatar=self.resolver,
        )
        await runner.run()


class _NoBuilds:
    def submit(self, message: object) -> None:
        raise RuntimeError("no builds in this benchmark")


@dataclass
class Watcher:
    """The viewer: arrival times of video thumbnails and audio levels from the avatar."""

    room: rtc.Room = field(default_factory=rtc.Room)
    video: list[tuple[float, np.ndarray]] = field(default_factory=list)
    audio: list[tuple[float, float]] = field(default_factory=list)
    first_video: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def attach(self) -> None:
        self.room.on("track_subscribed", self._on_track)

    def _on_track(self, track: rtc.Track, *_: object) -> None:
        reader = self._video if track.kind == rtc.TrackKind.KIND_VIDEO else self._audio
        self.tasks.append(asyncio.create_task(reader(track)))

    async def _video(self, track: rtc.Track) -> None:
        async for event in rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA):
            now = time.perf_counter()
            f = event.frame
            rgba = np.frombuffer(f.data, dtype=np.uint8).reshape(f.height, f.width, 4)
            self.video.append((now, cv2.resize(np.ascontiguousarray(rgba[..., :3]), (THUMB, THUMB))))
            self.first_video.set()

    async def _audio(self, track: rtc.Track) -> None:
        async for event in rtc.AudioStream(track, sample_rate=16_000, num_channels=1):
            pcm = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float32)
            self.audio.append((time.perf_counter(), float(np.sqrt(np.mean(pcm * pcm))) if pcm.size else 0.0))

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.room.disconnect()


@dataclass
class MouthModel:
    """Recognises a talking mouth: the mouth box differs from every idle frame of the avatar."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in thumbnail pixels
    idle: list[np.ndarray]

    @classmethod
    def of(cls, avatar: LoadedAvatar) -> MouthModel:
        width, height = avatar.pack.frame_size
        places = avatar.placements["idle"]
        x0 = min(p.x0 for p in places) * THUMB // width
        y0 = min(p.y0 for p in places) * THUMB // height
        x1 = -(-max(p.x1 for p in places) * THUMB // width)
        y1 = -(-max(p.y1 for p in places) * THUMB // height)
        renderer = EssenceRenderer(avatar, "bench-idle")
        idle = [cv2.resize(renderer.next_frame().image, (THUMB, THUMB)) for _ in range(250)]
        return cls((x0, y0, x1, y1), [cls._crop(i, (x0, y0, x1, y1)) for i in idle[::2]])

    @staticmethod
    def _crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, x1, y1 = box
        return image[y0:y1, x0:x1].astype(np.int16)

    def talking(self, thumb: np.ndarray, margin: float) -> float:
        crop = self._crop(thumb, self.box)
        return min(float(np.mean(np.abs(crop - ref))) for ref in self.idle) - margin

    def onset(self, frames: Sequence[tuple[float, np.ndarray]], after: float) -> float | None:
        """Time of the first frame after ``after`` whose mouth leaves the idle appearance, by more
        than the idle noise of the (up to) 20 frames just before ``after`` plus 3 levels."""
        baseline = [self.talking(thumb, 0.0) for t, thumb in frames if t <= after][-20:]
        if not baseline:
            return None
        margin = max(baseline) + 3.0
        return next((t for t, thumb in frames if t > after and self.talking(thumb, margin) > 0), None)


def audio_onset(levels: Iterable[tuple[float, float]], after: float) -> float | None:
    """Time of the first audio frame after ``after`` louder than ``LOUD`` (RMS, int16 scale)."""
    return next((t for t, level in levels if t > after and level > LOUD), None)


Inbound = dict[str, tuple[float, int, float, int]]


async def _inbound(room: rtc.Room) -> Inbound:
    """Viewer receive stats per kind: (jitterBufferDelay s, jitterBufferEmittedCount,
    totalProcessingDelay s, framesDecoded), summed over the subscriber PC's inbound-rtp streams."""
    out: Inbound = {}
    for stat in (await room.get_rtc_stats()).subscriber_stats:
        if stat.WhichOneof("stats") != "inbound_rtp":
            continue
        kind, inbound = stat.inbound_rtp.stream.kind, stat.inbound_rtp.inbound
        prev = out.get(kind, (0.0, 0, 0.0, 0))
        out[kind] = (
            prev[0] + inbound.jitter_buffer_delay,
            prev[1] + inbound.jitter_buffer_emitted_count,
            prev[2] + inbound.total_processing_delay,
            prev[3] + inbound.frames_decoded,
        )
    return out


def _mean_ms(
    before: dict[str, tuple[float, int, float, int]],
    after: dict[str, tuple[float, int, float, int]],
    kind: str,
    delay: int,
    count: int,
) -> float | None:
    """Mean per-unit delay (ms) between two ``_inbound`` snapshots, over what was emitted in between."""
    if kind not in after:
        return None
    old = before.get(kind, (0.0, 0, 0.0, 0))
    units = after[kind][count] - old[count]
    return (after[kind][delay] - old[delay]) / units * 1000.0 if units > 0 else None


@contextlib.contextmanager
def _model_server(host: str, key: str, secret: str) -> Iterator[tuple[str, str]]:
    """Run the model with its ingress probe on: yields (ws URL, probe base URL)."""
    try:
        port = free_port(host)
    except OSError as exc:
        raise SystemExit(
            f"cannot bind {host}: run under scripts/netns-run (libwebrtc ignores loopback)"
        ) from exc
    cmd = [sys.executable, "-m", "farm.testing.lk_model", "--host", host, "--port", str(port), "--probe"]
    proc = subprocess.Popen(
        [*cmd, "--api-key", key, "--api-secret", secret], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "listening on ..."
        yield f"ws://{host}:{port}", f"http://{host}:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _token(
    key: str, secret: str, identity: str, room: str, *, kind: str, attrs: dict[str, str] | None = None
) -> str:
    token = (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_kind(kind)  # type: ignore[arg-type]
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    return (token.with_attributes(attrs) if attrs else token).to_jwt()


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(values),
        "median": round(statistics.median(ordered), 1),
        "p95": round(p95, 1),
        "min": round(ordered[0], 1),
        "max": round(ordered[-1], 1),
    }


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (12_000 * np.sin(2 * np.pi * 220.0 * t * (1.0 + 0.5 * np.sin(2 * np.pi * 3.0 * t)))).astype(
        np.int16
    )


@dataclass
class Bench:
    url: str
    key: str
    secret: str
    client: httpx.AsyncClient
    farm_secret: str
    store: MemorySessionStore
    worker: LocalWorker
    mouth: MouthModel
    probe_url: str | None  # the model's ingress probe; None against a real server

    def token(self, identity: str, room: str, kind: str, attrs: dict[str, str] | None = None) -> str:
        return _token(self.key, self.secret, identity, room, kind=kind, attrs=attrs)

    async def one(self, index: int, measure_av: bool) -> dict[str, Any]:
        room = f"bench-{uuid.uuid4().hex[:6]}-{index}"
        agent = rtc.Room()
        await agent.connect(self.url, self.token("agent-1", room, "agent"))
        viewer = Watcher()
        viewer.attach()
        await viewer.room.connect(self.url, self.token("viewer-1", room, "standard"))
        attrs = {names.LK_ATTR_PUBLISH_ON_BEHALF: "agent-1", "agent_id": AGENT_ID}
        body = {
            "livekit_url": self.url,
            "livekit_token": self.token(names.DEFAULT_AVATAR_IDENTITY, room, "agent", attrs),
            "room_name": room,
            "mode": "cpu",
            "agent_id": AGENT_ID,
        }
        started = time.perf_counter()
        response = await self.client.post(
            "/v1/runtime-tokens/request", json=body, headers={names.HEADER_API_SECRET: self.farm_secret}
        )
        http_ms = (time.perf_counter() - started) * 1000.0
        response.raise_for_status()
        await asyncio.wait_for(viewer.first_video.wait(), 30)
        result: dict[str, Any] = {
            "http_ms": http_ms,
            "first_frame_ms": (viewer.video[0][0] - started) * 1000.0,
        }
        if measure_av:
            result.update(await self._av_offset(room, agent, viewer))
        await agent.disconnect()  # the avatar leaves with its agent
        await asyncio.wait_for(asyncio.gather(*self.worker.tasks), 30)
        self.worker.tasks.clear()
        result["timings_ms"] = self.store.get(response.json()["session_id"]).timings_ms
        result["source_av_ms"] = self.worker.rooms[-1].publisher.av_offsets_ms()
        result["timings_ms"].update({f"room_{k}": v for k, v in self.worker.rooms[-1].timings_ms.items()})
        await viewer.aclose()
        return result

    async def _av_offset(self, room: str, agent: rtc.Room, viewer: Watcher) -> dict[str, Any]:
        await asyncio.sleep(1.0)  # let the viewer collect idle frames for the baseline
        writer = await agent.local_participant.stream_bytes(
            name=f"AUDIO_{uuid.uuid4().hex[:8]}",
            topic=names.LK_TOPIC_AUDIO_STREAM,
            destination_identities=[names.DEFAULT_AVATAR_IDENTITY],
            attributes={"sample_rate": "24000", "num_channels": "1"},
        )
        stats_before = await _inbound(viewer.room)
        sent = time.perf_counter()
        pcm = np.concatenate([np.zeros(int(0.6 * 24_000), np.int16), _tone(1.0, 24_000)])
        for start in range(0, pcm.shape[0], 480):
            await writer.write(pcm[start : start + 480].tobytes())
            await asyncio.sleep(0.01)
        await writer.aclose()
        await asyncio.sleep(2.0)
        stats_after = await _inbound(viewer.room)
        out: dict[str, Any] = {
            "audio_jb_ms": _mean_ms(stats_before, stats_after, "audio", 0, 1),
            "video_jb_ms": _mean_ms(stats_before, stats_after, "video", 0, 1),
            "video_processing_ms": _mean_ms(stats_before, stats_after, "video", 2, 3),
        }
        audio_on = audio_onset(viewer.audio, sent)
        video_on = self.mouth.onset(viewer.video, sent)
        out["av_offset_ms"] = None if audio_on is None or video_on is None else (video_on - audio_on) * 1000.0
        if self.probe_url is not None:
            out.update(self._split(await self._ingress(room, sent), sent, audio_on, video_on))
        return out

    def _split(
        self, ingress: dict[str, Any], sent: float, audio_on: float | None, video_on: float | None
    ) -> dict[str, float]:
        """Onsets at the model (same detection as at the viewer, on the decoded ingress frames), timed
        by their first RTP packet's arrival (``ingress_*``) and by the model's decode (``decode_*``)."""
        dec_audio = audio_onset(ingress["audio"], sent)
        dec_video = self.mouth.onset(ingress["video"], sent)
        arrival = ingress["arrival"]
        arr_audio = arrival.get(dec_audio) if dec_audio is not None else None
        arr_video = arrival.get(dec_video) if dec_video is not None else None
        out: dict[str, float] = {}
        pairs = {
            "ingress_av_offset_ms": (arr_video, arr_audio),
            "model_decode_av_offset_ms": (dec_video, dec_audio),
            "model_audio_hold_ms": (dec_audio, arr_audio),
            "model_video_hold_ms": (dec_video, arr_video),
            "audio_ingress_to_viewer_ms": (audio_on, arr_audio),
            "video_ingress_to_viewer_ms": (video_on, arr_video),
        }
        for key, (late, early) in pairs.items():
            if late is not None and early is not None:
                out[key] = (late - early) * 1000.0
        return out

    async def _ingress(self, room: str, sent: float) -> dict[str, Any]:
        """The avatar's tracks as the model's relay decoded them (same clock: perf_counter, one host):
        ``audio``/``video`` (decode time, feature) and ``arrival`` (decode time → first RTP packet)."""
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{self.probe_url}/debug/ingress", params={"room": room, "since": sent - 2.0}, timeout=30
            )
        response.raise_for_status()
        out: dict[str, Any] = {"audio": [], "video": [], "arrival": {}}
        for track in response.json()["tracks"]:
            if track["identity"] != names.DEFAULT_AVATAR_IDENTITY:
                continue
            out["arrival"].update(zip(track["t"], track["arrival"], strict=True))
            if track["kind"] == "audio":
                out["audio"] = list(zip(track["t"], track["level"], strict=True))
            else:
                out["video"] = list(zip(track["t"], decode_thumbs(track), strict=True))
        return out


async def _run(
    args: argparse.Namespace, url: str, key: str, secret: str, probe_url: str | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-room-") as tmp:
        settings = Settings.model_validate({"data_dir": Path(tmp) / "var", "output_dir": Path(tmp) / "out"})
        blobs = BlobStore(settings.blob_dir)
        pack = build_pack(sample_portrait(), Path(tmp) / "pack", size=args.size)
        image_ref = blobs.put(cv2.imencode(".png", sample_portrait())[1].tobytes(), ".png")
        agents, keys, store = MemoryAgentStore(), MemoryKeyStore(), MemorySessionStore()
        _, farm_secret = keys.create("bench", "bench")
        agents.create(
            Agent(
                id=AGENT_ID, tenant="bench", status=AgentStatus.READY, image_ref=image_ref, pack_ref=str(pack)
            )
        )
        resolver = AvatarResolver(settings, agents, blobs)
        pool = ModelPool([ModelKind.ESSENCE], lambda _: EssenceEngine())
        pool.prewarm(
            timeout_s=120, hot=[(ModelKind.ESSENCE, resolver.for_agent(AGENT_ID, ModelKind.ESSENCE))]
        )
        registry = MemoryWorkerRegistry()
        registry.publish(
            WorkerInfo(
                worker_id="bench", hostname="local", pid=0, queues=["essence"], state="READY", capacity=1000
            ),
            ttl_s=3600,
        )
        worker = LocalWorker(store, pool, settings, resolver)
        app = create_app(
            settings,
            store=store,
            queue=worker,
            keys=keys,
            agents=agents,
            registry=registry,
            builds=_NoBuilds(),
        )
        loaded = pool.get_avatar(ModelKind.ESSENCE, resolver.for_agent(AGENT_ID, ModelKind.ESSENCE))
        assert isinstance(loaded, LoadedAvatar)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://farm") as client:
            mouth = MouthModel.of(loaded)
            bench = Bench(url, key, secret, client, farm_secret, store, worker, mouth, probe_url)
            await bench.one(-1, measure_av=False)  # warm-up: first join, codec and relay set-up
            runs = [await bench.one(i, measure_av=i < args.av_sessions) for i in range(args.sessions)]
        pool.close()
    return _summary(args, runs)


def _summary(args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    av = [r["av_offset_ms"] for r in runs if r.get("av_offset_ms") is not None]
    measured = [r for r in runs if "av_offset_ms" in r]

    def series(key: str) -> dict[str, float]:
        return _stats([r[key] for r in measured if r.get(key) is not None])

    corrected = [
        r["av_offset_ms"] + r["audio_jb_ms"] - r["video_jb_ms"]
        for r in measured
        if None not in (r.get("av_offset_ms"), r.get("audio_jb_ms"), r.get("video_jb_ms"))
    ]
    steps = ("model_ready", "avatar_ready", "room_connect", "room_publish", "sink_ready", "first_frame")
    return {
        "bench": "room",
        "against": "a LiveKit-protocol model" if not args.livekit_url else f"LiveKit at {args.livekit_url}",
        "sessions": len(runs),
        "frame_size": args.size,
        "first_frame_ms": _stats([r["first_frame_ms"] for r in runs]),
        "http_ms": _stats([r["http_ms"] for r in runs]),
        "worker_ms": {s: _stats([r["timings_ms"][s] for r in runs if s in r["timings_ms"]]) for s in steps},
        "av_offset_ms": _stats(av),
        "source_av_offset_ms": _stats([v for r in runs for v in r["source_av_ms"]]),
        "av_offset_samples": [round(v, 1) for v in av],
        "ingress_av_offset_ms": series("ingress_av_offset_ms"),
        "model_decode_av_offset_ms": series("model_decode_av_offset_ms"),
        "model_audio_hold_ms": series("model_audio_hold_ms"),
        "model_video_hold_ms": series("model_video_hold_ms"),
        "audio_ingress_to_viewer_ms": series("audio_ingress_to_viewer_ms"),
        "video_ingress_to_viewer_ms": series("video_ingress_to_viewer_ms"),
        "viewer_audio_jitter_buffer_ms": series("audio_jb_ms"),
        "viewer_video_jitter_buffer_ms": series("video_jb_ms"),
        "viewer_video_processing_ms": series("video_processing_ms"),
        "av_offset_jb_corrected_ms": _stats(corrected),
        "av_offset_budget_ms": _budget(measured),
        "av_unmeasured": sum(1 for r in runs if "av_offset_ms" in r and r["av_offset_ms"] is None),
        "targets": {"first_frame_p50_ms": 500, "abs_av_offset_ms": 40},
    }


def _budget(measured: list[dict[str, Any]]) -> dict[str, float]:
    """Median per-stage contribution to the viewer's offset (sessions with every stage measured);
    the stages add up to the viewer's offset of each session."""
    stages: dict[str, list[float]] = {}
    for r in measured:
        keys = (
            "av_offset_ms",
            "ingress_av_offset_ms",
            "model_decode_av_offset_ms",
            "audio_jb_ms",
            "video_jb_ms",
        )
        if not r["source_av_ms"] or any(r.get(k) is None for k in keys):
            continue
        source = r["source_av_ms"][0]
        steps = {
            "farm_source": source,
            "sdk_publish_to_model_ingress": r["ingress_av_offset_ms"] - source,
            "model_receive_jitter_buffer": r["model_decode_av_offset_ms"] - r["ingress_av_offset_ms"],
            "model_reencode_and_viewer": r["av_offset_ms"] - r["model_decode_av_offset_ms"],
            "of_which_viewer_jitter_buffers": r["video_jb_ms"] - r["audio_jb_ms"],
        }
        for key, value in steps.items():
            stages.setdefault(key, []).append(value)
    return {key: round(statistics.median(values), 1) for key, values in stages.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench room", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--av-sessions", type=int, default=5)
    parser.add_argument("--size", type=int, default=256, help="avatar frame size (square)")
    parser.add_argument("--host", default="10.77.0.1", help="address for the LiveKit-protocol model")
    parser.add_argument("--livekit-url")
    parser.add_argument("--api-key", default="devkey")
    parser.add_argument("--api-secret", default="bench-secret-long-enough-for-hs256-0123456789")
    args = parser.parse_args(argv)
    if args.livekit_url:
        result = asyncio.run(_run(args, args.livekit_url, args.api_key, args.api_secret, None))
    else:
        with _model_server(args.host, args.api_key, args.api_secret) as (url, probe_url):
            result = asyncio.run(_run(args, url, args.api_key, args.api_secret, probe_url))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
