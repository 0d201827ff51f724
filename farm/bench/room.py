"""``farm bench room``: runtime-token request → first avatar video frame at a viewer, and A/V offset.

Per session (``--sessions``, default 20, each in a fresh room): an agent and a viewer are already in
the room (real ``livekit`` SDK participants); the clock starts just before the bitHuman-style
``POST /v1/runtime-tokens/request`` (the real API app, in process over ASGI) and stops when the
viewer decodes the first frame of the avatar's video track. Behind the API the session runs on the
production worker runtime (``farm.bench.roomfarm``).

A/V offset (``--av-sessions``): the agent sends 0.6 s of silence then a spoken phrase opening on an
open vowel (espeak-ng: the mouth follows speech through the viseme model, not a tone); the offset is
(video onset - audio onset) at the viewer, where audio onset is the first loud audio frame and video
onset the first frame whose mouth region leaves the avatar's idle appearance (``audio_onset`` and
``MouthModel.onset``). Positive = video late. Where it arises (one clock, ``perf_counter``, one host):

* ``source_av_offset_ms``: the farm's own part: when a segment's first speech frame reached the
  video encoder minus when its first audio left the audio queue;
* ``viewer_*_jitter_buffer_ms``: the Python viewer's libwebrtc inbound-rtp stats over the tone
  (Δ jitterBufferDelay / Δ jitterBufferEmittedCount; audio per sample, video per frame) and
  ``viewer_video_processing_ms``; the Python SDK's ``VideoStream`` does no lip-sync against audio, so
  ``av_offset_jb_corrected_ms`` = viewer offset + audio jitter buffer − video jitter buffer is the
  offset with the receiver's buffering difference taken out (a browser lip-syncs by RTP/RTCP time).

LiveKit: by default a real ``livekit-server`` (``farm.devtools.livekit_server``) is started on this machine's
non-loopback address (run under ``scripts/netns-run`` on a machine without one: libwebrtc ignores
loopback); ``--livekit-url/--api-key/--api-secret`` use any other server. ``against`` in the JSON
names the server and its version.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from livekit import api, rtc

from farm.api.routes.viewer import viewer_path, viewer_token
from farm.bench.browser import BrowserViewer, HttpApp, chromium, chromium_available, new_viewer
from farm.bench.common import finish, parse_args, summary
from farm.bench.onsets import THUMB, MouthModel, audio_onset
from farm.bench.roomfarm import AGENT_ID, RoomFarm, add_livekit_args, livekit_target, room_farm
from farm.infra.procs import free_port
from farm.kernel import names
from farm.kernel.settings import Settings


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


def livekit_token(
    key: str, secret: str, identity: str, room: str, *, kind: str, attrs: dict[str, str] | None = None
) -> str:
    token = (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_kind(kind)  # type: ignore[arg-type]
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    return (token.with_attributes(attrs) if attrs else token).to_jwt()


def _spoken() -> tuple[np.ndarray, int]:
    """A spoken phrase that opens on an open vowel (espeak-ng), int16 mono, and its rate: the mouth's
    onset is then the speech's, not the viseme model's guess at a tone."""
    from farm.infra.espeak import SAMPLE_RATE_HZ, synthesize

    pcm, _ = synthesize("Ah, hello there. How are you today?")
    return np.asarray(pcm, np.int16), SAMPLE_RATE_HZ


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
    farm: RoomFarm
    mouth: MouthModel
    browser: Any = None  # a headless Chromium (farm.bench.browser) when --browser
    page_base: str = ""  # where the farm's viewer page is served over HTTP

    def token(self, identity: str, room: str, kind: str, attrs: dict[str, str] | None = None) -> str:
        return livekit_token(self.key, self.secret, identity, room, kind=kind, attrs=attrs)

    async def one(self, index: int, measure_av: bool) -> dict[str, Any]:
        room = f"bench-{uuid.uuid4().hex[:6]}-{index}"
        agent = rtc.Room()
        await agent.connect(self.url, self.token("agent-1", room, "agent"))
        viewer = Watcher()
        viewer.attach()
        await viewer.room.connect(self.url, self.token("viewer-1", room, "standard"))
        page = await self._open_page(room)
        attrs = {names.LK_ATTR_PUBLISH_ON_BEHALF: "agent-1", "agent_id": AGENT_ID}
        body = {
            "livekit_url": self.url,
            "livekit_token": self.token(names.DEFAULT_AVATAR_IDENTITY, room, "agent", attrs),
            "room_name": room,
            "mode": "cpu",
            "agent_id": AGENT_ID,
        }
        started, started_epoch = time.perf_counter(), time.time()
        response = await self.farm.client.post(
            "/v1/runtime-tokens/request", json=body, headers={names.HEADER_API_SECRET: self.farm.farm_secret}
        )
        http_ms = (time.perf_counter() - started) * 1000.0
        response.raise_for_status()
        session_id = response.json()["session_id"]
        await asyncio.wait_for(viewer.first_video.wait(), 30)
        result: dict[str, Any] = {
            "http_ms": http_ms,
            "first_frame_ms": (viewer.video[0][0] - started) * 1000.0,
        }
        if page is not None:
            result["browser_first_frame_ms"] = (await page.first_frame_at() - started_epoch) * 1000.0
            subscribed = await page.video_subscribed_at()
            if subscribed is not None:
                result["browser_subscribed_ms"] = (subscribed - started_epoch) * 1000.0
            result["browser_inbound_at_first_frame"] = await page.video_inbound()
        if measure_av:
            result.update(await self._av_offset(agent, viewer, page))
            if page is not None:
                result["browser_barge_in_ms"] = await self._barge_in(agent, page)
        if page is not None:
            result["browser_codec"] = await page.codec()
            await page.aclose()
        await agent.disconnect()  # the avatar leaves with its agent
        await self.farm.wait(session_id)
        room_session = self.farm.rooms[session_id]
        result["timings_ms"] = dict(self.farm.session(session_id).timings_ms or {})
        result["source_av_ms"] = room_session.publisher.av_offsets_ms()
        result["timings_ms"].update({f"room_{k}": v for k, v in room_session.timings_ms.items()})
        await viewer.aclose()
        return result

    async def _open_page(self, room: str) -> BrowserViewer | None:
        """A browser viewer in ``room`` (joined before the avatar is requested), or None."""
        if self.browser is None:
            return None
        page = await new_viewer(self.browser)
        token = viewer_token(self.key, self.secret, room, ttl_s=600)
        await page.open(self.page_base + viewer_path(room, self.url, token))
        return page

    async def _barge_in(self, agent: rtc.Room, page: BrowserViewer) -> float | None:
        """A long segment, ``lk.clear_buffer`` after 1 s; → the first of 5 idle-looking frames in the
        browser (both on the wall clock). The idle margin comes from the frames before the speech."""
        await page.start_recording()
        await asyncio.sleep(1.0)
        before = time.time()
        writer = await agent.local_participant.stream_bytes(
            name=f"AUDIO_{uuid.uuid4().hex[:8]}",
            topic=names.LK_TOPIC_AUDIO_STREAM,
            destination_identities=[names.DEFAULT_AVATAR_IDENTITY],
            attributes={"sample_rate": "24000", "num_channels": "1"},
        )
        pcm = _tone(4.0, 24_000)
        for start in range(0, 24_000, 480):  # one second of it, in real time
            await writer.write(pcm[start : start + 480].tobytes())
            await asyncio.sleep(0.02)
        await agent.local_participant.perform_rpc(
            destination_identity=names.DEFAULT_AVATAR_IDENTITY, method=names.LK_RPC_CLEAR_BUFFER, payload=""
        )
        cleared = time.time()
        await writer.aclose()
        await asyncio.sleep(1.5)
        frames, _ = await page.stop_recording()
        margin = self.mouth.margin(frames, before)
        idle_at = None if margin is None else self.mouth.back_to_idle(frames, cleared, margin)
        return None if idle_at is None else (idle_at - cleared) * 1000.0

    async def _av_offset(
        self, agent: rtc.Room, viewer: Watcher, page: BrowserViewer | None
    ) -> dict[str, Any]:
        if page is not None:
            await page.start_recording()
        await asyncio.sleep(1.0)  # let the viewer collect idle frames for the baseline

        spoken, rate = _spoken()
        writer = await agent.local_participant.stream_bytes(
            name=f"AUDIO_{uuid.uuid4().hex[:8]}",
            topic=names.LK_TOPIC_AUDIO_STREAM,
            destination_identities=[names.DEFAULT_AVATAR_IDENTITY],
            attributes={"sample_rate": str(rate), "num_channels": "1"},
        )
        stats_before = await _inbound(viewer.room)
        sent, sent_epoch = time.perf_counter(), time.time()
        pcm = np.concatenate([np.zeros(int(0.6 * rate), np.int16), spoken])
        step = rate // 50  # 20 ms of audio every 10 ms, as a TTS streams
        for start in range(0, pcm.shape[0], step):
            await writer.write(pcm[start : start + step].tobytes())
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
        if page is not None:
            frames, levels = await page.stop_recording()
            b_audio, b_video = audio_onset(levels, sent_epoch), self.mouth.onset(frames, sent_epoch)
            if b_audio is not None and b_video is not None:
                out["browser_av_offset_ms"] = (b_video - b_audio) * 1000.0
        return out


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-room-") as tmp,
        livekit_target(args.livekit_url, args.api_key, args.api_secret, Path(tmp)) as target,
    ):
        workdir = Path(tmp)
        settings = Settings.model_validate(  # livekit_url: the allow-list of the start requests
            {
                "data_dir": workdir / "var",
                "output_dir": workdir / "out",
                "livekit_url": target.url,
                "video_encoder": args.video_encoder,
            }
        )
        farm = room_farm(workdir, size=args.size, capacity=4, settings=settings)
        http = await HttpApp(farm.app, free_port()).start()  # the viewer page, for the browser
        browser_version = None
        try:
            bench = Bench(target.url, target.api_key, target.api_secret, farm, MouthModel.of(farm.avatar))
            bench.page_base = http.base_url
            async with contextlib.AsyncExitStack() as stack:
                if args.browser:
                    bench.browser = await stack.enter_async_context(chromium())
                    browser_version = bench.browser.version
                await bench.one(-1, measure_av=False)  # warm-up: first join, codec set-up
                runs = [await bench.one(i, measure_av=i < args.av_sessions) for i in range(args.sessions)]
        finally:
            http.stop()
            await farm.aclose()
    result = _summary(args, runs, target.against)
    result["video_encoder"] = args.video_encoder
    result["browser"] = _browser_summary(runs, browser_version)
    return result


def _browser_summary(runs: list[dict[str, Any]], version: str | None) -> dict[str, Any] | None:
    """At the headless Chromium viewer: request → first decoded frame, A/V offset, barge-in."""
    if version is None:
        return None

    def series(key: str) -> dict[str, float]:
        return summary([r[key] for r in runs if r.get(key) is not None])

    return {
        "browser": f"Chromium {version} (Debian, headless)",
        "video_codec": next((r["browser_codec"] for r in runs if r.get("browser_codec")), None),
        "first_frame_ms": series("browser_first_frame_ms"),
        # request → the page subscribed to the video track (the rest of first_frame_ms is the
        # first picture's RTP, keyframe and decode); per session, in request order
        "subscribed_ms": series("browser_subscribed_ms"),
        "first_frame_ms_in_order": [
            round(r["browser_first_frame_ms"], 1) for r in runs if r.get("browser_first_frame_ms")
        ],
        "subscribed_ms_in_order": [
            round(r["browser_subscribed_ms"], 1) for r in runs if r.get("browser_subscribed_ms")
        ],
        "inbound_at_first_frame_in_order": [r.get("browser_inbound_at_first_frame") for r in runs],
        "av_offset_ms": series("browser_av_offset_ms"),
        "barge_in_ms": series("browser_barge_in_ms"),
        "av_unmeasured": sum(
            1 for r in runs if "av_offset_ms" in r and r.get("browser_av_offset_ms") is None
        ),
        "targets": {"first_frame_p50_ms": 300, "abs_av_offset_ms": 40, "barge_in_ms": 200},
    }


def _summary(args: argparse.Namespace, runs: list[dict[str, Any]], against: str) -> dict[str, Any]:
    av = [r["av_offset_ms"] for r in runs if r.get("av_offset_ms") is not None]
    measured = [r for r in runs if "av_offset_ms" in r]

    def series(key: str) -> dict[str, float]:
        return summary([r[key] for r in measured if r.get(key) is not None])

    corrected = [
        r["av_offset_ms"] + r["audio_jb_ms"] - r["video_jb_ms"]
        for r in measured
        if None not in (r.get("av_offset_ms"), r.get("audio_jb_ms"), r.get("video_jb_ms"))
    ]
    steps = ("model_ready", "avatar_ready", "room_connect", "room_publish", "sink_ready", "first_frame")
    return {
        "bench": "room",
        "against": against,
        "sessions": len(runs),
        "frame_size": args.size,
        "first_frame_ms": summary([r["first_frame_ms"] for r in runs]),
        "http_ms": summary([r["http_ms"] for r in runs]),
        "worker_ms": {s: summary([r["timings_ms"][s] for r in runs if s in r["timings_ms"]]) for s in steps},
        "av_offset_ms": summary(av),
        "source_av_offset_ms": summary([v for r in runs for v in r["source_av_ms"]]),
        "av_offset_samples": [round(v, 1) for v in av],
        "viewer_audio_jitter_buffer_ms": series("audio_jb_ms"),
        "viewer_video_jitter_buffer_ms": series("video_jb_ms"),
        "viewer_video_processing_ms": series("video_processing_ms"),
        "av_offset_jb_corrected_ms": summary(corrected),
        "av_unmeasured": sum(1 for r in runs if "av_offset_ms" in r and r["av_offset_ms"] is None),
        "targets": {"first_frame_p50_ms": 500, "abs_av_offset_ms": 40},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench room", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--av-sessions", type=int, default=5)
    parser.add_argument("--size", type=int, default=256, help="avatar frame size (square)")
    parser.add_argument(
        "--video-encoder",
        choices=["sdk", "farm"],
        default="sdk",
        help="who encodes the avatar's video: the SDK or the worker (pre-encoded to LiveKit)",
    )
    parser.add_argument("--server", choices=["livekit"], default="livekit", help="a local livekit-server")
    add_livekit_args(parser)
    parser.add_argument(
        "--browser",
        action=argparse.BooleanOptionalAction,
        default=chromium_available(),
        help="also measure at a headless Chromium viewer (default: when /usr/bin/chromium exists)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    smoke = {"sessions": 1, "av_sessions": 1, "size": 128, "browser": False}
    args = parse_args(parser, argv, smoke=smoke)
    finish(asyncio.run(_run(args)), args.out, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
