"""The other participants of an e2e room, built on the real ``livekit`` SDK.

``Agent`` does exactly what livekit-agents' ``DataStreamAudioOutput`` (1.8.9, the audio tail the
bitHuman and Bey plugins install) does on the wire: one ``lk.audio_stream`` byte stream per segment
to the avatar identity with string attributes ``sample_rate`` / ``num_channels``, one write per TTS
frame, the trailer as flush; ``lk.clear_buffer`` with payload ""; an ``lk.playback_finished``
handler that rejects other callers and builds ``PlaybackFinishedEvent(**json.loads(payload))`` (an
unknown key is an error); no ``lk.playback_started`` handler (``wait_playback_start=False``). It is a
faithful re-implementation on livekit 1.2, not the livekit-agents class: that package pins
``livekit==1.1.21`` exactly, which the farm does not run on.

``Viewer`` subscribes like a frontend and keeps what it receives (video frames, audio levels) with
arrival times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field

import cv2
import numpy as np
from livekit import rtc

from farm.kernel import names
from tests.e2e.conftest import LkBackend

TTS_FRAME_MS = 20


@dataclass
class PlaybackFinishedEvent:
    """livekit.agents.voice.io.PlaybackFinishedEvent: exactly these keys are accepted."""

    playback_position: float
    interrupted: bool
    synchronized_transcript: str | None = None


def tone(seconds: float, rate: int, freq_hz: float = 220.0, amplitude: int = 12_000) -> np.ndarray:
    """Speech stand-in: a loud warbling tone (int16 mono)."""
    t = np.arange(int(seconds * rate)) / rate
    warble = 1.0 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
    return (amplitude * np.sin(2 * np.pi * freq_hz * t * warble)).astype(np.int16)


@dataclass
class Agent:
    backend: LkBackend
    room_name: str
    identity: str = "agent-1"
    avatar_identity: str = names.DEFAULT_AVATAR_IDENTITY
    room: rtc.Room = field(default_factory=rtc.Room)
    finished: list[PlaybackFinishedEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _writer: rtc.ByteStreamWriter | None = None

    async def connect(self) -> None:
        token = self.backend.token(self.identity, self.room_name, kind="agent")
        await self.room.connect(self.backend.url, token)
        self.room.local_participant.register_rpc_method(names.LK_RPC_PLAYBACK_FINISHED, self._on_finished)

    def _on_finished(self, data: rtc.RpcInvocationData) -> str:
        if data.caller_identity != self.avatar_identity:
            self.rejected.append(data.caller_identity)
            return "reject"
        self.finished.append(PlaybackFinishedEvent(**json.loads(data.payload)))
        self._changed.set()
        return "ok"

    async def wait_for_avatar(self, timeout_s: float = 30.0) -> rtc.RemoteParticipant:
        """Like ``utils.wait_for_participant``: the avatar is present (and ACTIVE on a real server)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.room.remote_participants.get(self.avatar_identity)
            if found is not None:
                return found
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{self.avatar_identity} never joined")

    async def begin(self, sample_rate: int, channels: int = 1) -> None:
        self._writer = await self.room.local_participant.stream_bytes(
            name=f"AUDIO_{uuid.uuid4().hex[:12]}",
            topic=names.LK_TOPIC_AUDIO_STREAM,
            destination_identities=[self.avatar_identity],
            attributes={"sample_rate": str(sample_rate), "num_channels": str(channels)},
        )

    async def write(self, pcm: np.ndarray, sample_rate: int, *, pace: float = 2.0) -> None:
        """One write per 20 ms TTS frame, ``pace`` times faster than real time (TTS runs ahead)."""
        assert self._writer is not None
        step = sample_rate * TTS_FRAME_MS // 1000
        for start in range(0, pcm.shape[0], step):
            await self._writer.write(pcm[start : start + step].tobytes())
            await asyncio.sleep(TTS_FRAME_MS / 1000.0 / pace)

    async def flush(self) -> None:
        assert self._writer is not None
        writer, self._writer = self._writer, None
        await writer.aclose()

    async def say(self, pcm: np.ndarray, sample_rate: int) -> None:
        await self.begin(sample_rate)
        await self.write(pcm, sample_rate)
        await self.flush()

    async def clear_buffer(self) -> str:
        return await self.room.local_participant.perform_rpc(
            destination_identity=self.avatar_identity, method=names.LK_RPC_CLEAR_BUFFER, payload=""
        )

    async def transcribe(self, text: str, segment_id: str) -> None:
        """Publish a final transcription the way livekit-agents does (a text stream on lk.transcription)."""
        await self.room.local_participant.send_text(
            text,
            topic=names.LK_TOPIC_TRANSCRIPTION,
            attributes={"lk.segment_id": segment_id, "lk.transcription_final": "true"},
        )

    async def trigger_dynamics(self, payload: str) -> str:
        return await self.room.local_participant.perform_rpc(
            destination_identity=self.avatar_identity,
            method=names.RPC_TRIGGER_DYNAMICS,
            payload=payload,
            response_timeout=10,
        )

    async def wait_finished(self, count: int, timeout_s: float = 20.0) -> list[PlaybackFinishedEvent]:
        deadline = time.monotonic() + timeout_s
        while len(self.finished) < count:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self.finished)} of {count} lk.playback_finished arrived")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.finished

    async def aclose(self) -> None:
        await self.room.disconnect()


@dataclass
class Received:
    at: float  # perf_counter at arrival
    image: np.ndarray | None = None  # 64x64 RGB thumbnail
    level: float = 0.0  # audio RMS (int16 units)


@dataclass
class Viewer:
    backend: LkBackend
    room_name: str
    identity: str = "viewer-1"
    room: rtc.Room = field(default_factory=rtc.Room)
    video: list[Received] = field(default_factory=list)
    audio: list[Received] = field(default_factory=list)
    first_video_at: float | None = None
    video_frames_by_track: dict[str, int] = field(default_factory=dict)  # track sid -> frames decoded
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self) -> None:
        self.room.on("track_subscribed", self._on_track)
        await self.room.connect(self.backend.url, self.backend.token(self.identity, self.room_name))

    def _on_track(
        self, track: rtc.Track, publication: rtc.RemoteTrackPublication, _p: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self._tasks.append(asyncio.create_task(self._read_video(track)))
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            self._tasks.append(asyncio.create_task(self._read_audio(track)))

    async def _read_video(self, track: rtc.Track) -> None:
        async for event in rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA):
            now = time.perf_counter()
            frame = event.frame
            rgba = np.frombuffer(frame.data, dtype=np.uint8).reshape(frame.height, frame.width, 4)
            thumb = cv2.resize(np.ascontiguousarray(rgba[..., :3]), (64, 64), interpolation=cv2.INTER_AREA)
            if self.first_video_at is None:
                self.first_video_at = now
            self.video.append(Received(now, image=thumb))
            self.video_frames_by_track[track.sid] = self.video_frames_by_track.get(track.sid, 0) + 1
            self._changed.set()

    async def _read_audio(self, track: rtc.Track) -> None:
        async for event in rtc.AudioStream(track, sample_rate=16_000, num_channels=1):
            pcm = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float32)
            level = float(np.sqrt(np.mean(pcm * pcm))) if pcm.size else 0.0
            self.audio.append(Received(time.perf_counter(), level=level))
            self._changed.set()

    async def wait(self, predicate: object, timeout_s: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout_s
        check = predicate  # a zero-argument callable returning bool
        while not check():  # type: ignore[operator]
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"viewer: {what} not met in {timeout_s} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.room.disconnect()
