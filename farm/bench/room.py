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
onset the first frame whose mouth region leaves the avatar's idle appearance. Positive = video late.
The viewer's number includes what the farm does not control (the SFU path, and receiver jitter
buffers: livekit puts each track in its own stream, so receivers do not lip-sync them; the model
also transcodes both tracks). ``source_av_offset_ms`` is the farm's own part: per segment, when its
first speech frame reached the video encoder minus when its first audio left the audio queue.

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
from collections.abc import Iterator
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

AGENT_ID = "A0BENCH001"
THUMB = 64


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


@contextlib.contextmanager
def _model_server(host: str, key: str, secret: str) -> Iterator[str]:
    try:
        port = free_port(host)
    except OSError as exc:
        raise SystemExit(
            f"cannot bind {host}: run under scripts/netns-run (libwebrtc ignores loopback)"
        ) from exc
    cmd = [sys.executable, "-m", "farm.testing.lk_model", "--host", host, "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--api-key", key, "--api-secret", secret], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "listening on ..."
        yield f"ws://{host}:{port}"
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
            result["av_offset_ms"] = await self._av_offset(agent, viewer)
        await agent.disconnect()  # the avatar leaves with its agent
        await asyncio.wait_for(asyncio.gather(*self.worker.tasks), 30)
        self.worker.tasks.clear()
        result["timings_ms"] = self.store.get(response.json()["session_id"]).timings_ms
        result["source_av_ms"] = self.worker.rooms[-1].publisher.av_offsets_ms()
        result["timings_ms"].update({f"room_{k}": v for k, v in self.worker.rooms[-1].timings_ms.items()})
        await viewer.aclose()
        return result

    async def _av_offset(self, agent: rtc.Room, viewer: Watcher) -> float | None:
        await asyncio.sleep(1.0)  # let the viewer collect idle frames for the baseline
        baseline = [self.mouth.talking(thumb, 0.0) for _, thumb in viewer.video[-20:]]
        margin = max(baseline) + 3.0
        writer = await agent.local_participant.stream_bytes(
            name=f"AUDIO_{uuid.uuid4().hex[:8]}",
            topic=names.LK_TOPIC_AUDIO_STREAM,
            destination_identities=[names.DEFAULT_AVATAR_IDENTITY],
            attributes={"sample_rate": "24000", "num_channels": "1"},
        )
        sent = time.perf_counter()
        pcm = np.concatenate([np.zeros(int(0.6 * 24_000), np.int16), _tone(1.0, 24_000)])
        for start in range(0, pcm.shape[0], 480):
            await writer.write(pcm[start : start + 480].tobytes())
            await asyncio.sleep(0.01)
        await writer.aclose()
        await asyncio.sleep(2.0)
        audio_on = next((t for t, level in viewer.audio if t > sent and level > 1500.0), None)
        video_on = next(
            (t for t, thumb in viewer.video if t > sent and self.mouth.talking(thumb, margin) > 0), None
        )
        if audio_on is None or video_on is None:
            return None
        return (video_on - audio_on) * 1000.0


async def _run(args: argparse.Namespace, url: str, key: str, secret: str) -> dict[str, Any]:
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
            bench = Bench(url, key, secret, client, farm_secret, store, worker, MouthModel.of(loaded))
            await bench.one(-1, measure_av=False)  # warm-up: first join, codec and relay set-up
            runs = [await bench.one(i, measure_av=i < args.av_sessions) for i in range(args.sessions)]
        pool.close()
    return _summary(args, runs)


def _summary(args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    av = [r["av_offset_ms"] for r in runs if r.get("av_offset_ms") is not None]
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
        "av_unmeasured": sum(1 for r in runs if "av_offset_ms" in r and r["av_offset_ms"] is None),
        "targets": {"first_frame_p50_ms": 500, "abs_av_offset_ms": 40},
    }


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
        result = asyncio.run(_run(args, args.livekit_url, args.api_key, args.api_secret))
    else:
        with _model_server(args.host, args.api_key, args.api_secret) as url:
            result = asyncio.run(_run(args, url, args.api_key, args.api_secret))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
