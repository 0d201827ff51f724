"""LiveKitRoomSession against a thin fake of the ``rtc.Room`` surface (no server, no network).

The fake records what the session registers and sends; audio/video sources are the real SDK objects
(they work without a room). The e2e layer checks the same behaviour against a LiveKit-protocol model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from farm.kernel import names
from farm.kernel.domain import RoomJoin
from farm.kernel.settings import Settings
from farm.render.base import SAMPLES_PER_FRAME, AvatarFrame
from farm.stream.base import ClearBuffer, Gesture, InputClosed, InputEvent, SegmentEnd, SpeechChunk
from farm.stream.livekit import LiveKitRoomSession

pytestmark = pytest.mark.unit

AGENT = "agent-1"


@dataclass
class FakeInfo:
    stream_id: str
    attributes: dict[str, str]


class FakeReader:
    def __init__(self, chunks: list[bytes], attributes: dict[str, str], stream_id: str = "S1") -> None:
        self.info = FakeInfo(stream_id, attributes)
        self._chunks = chunks
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeParticipant:
    identity: str
    kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    attributes: dict[str, str] = field(default_factory=dict)
    disconnect_reason: int = 0


@dataclass
class FakePublication:
    sid: str


@dataclass
class FakeLocal:
    rpc: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    published: list[Any] = field(default_factory=list)

    def register_rpc_method(self, name: str, handler: Any) -> None:
        self.rpc[name] = handler

    unpublished: list[str] = field(default_factory=list)

    async def publish_track(self, track: Any, options: rtc.TrackPublishOptions) -> FakePublication:
        self.published.append(options)
        return FakePublication(f"TR_{len(self.published)}")

    async def unpublish_track(self, sid: str) -> None:
        self.unpublished.append(sid)

    async def perform_rpc(self, *, destination_identity: str, method: str, payload: str, **_: Any) -> str:
        self.calls.append((destination_identity, method, payload))
        if method == names.LK_RPC_PLAYBACK_STARTED:  # a bitHuman agent registers no such method
            raise rtc.RpcError(rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD, "unsupported")
        return "ok"


@dataclass
class FakeRoom:
    local_participant: FakeLocal = field(default_factory=FakeLocal)
    remote_participants: dict[str, FakeParticipant] = field(default_factory=dict)
    streams: dict[str, Any] = field(default_factory=dict)
    handlers: dict[str, Any] = field(default_factory=dict)
    options: rtc.RoomOptions | None = None

    def register_byte_stream_handler(self, topic: str, handler: Any) -> None:
        self.streams[topic] = handler

    def register_text_stream_handler(self, topic: str, handler: Any) -> None:
        self.streams[topic] = handler

    def on(self, event: str, handler: Any) -> None:
        self.handlers[event] = handler

    async def connect(self, url: str, token: str, options: rtc.RoomOptions) -> None:
        assert names.LK_TOPIC_AUDIO_STREAM in self.streams  # registered before connect
        self.options = options

    async def disconnect(self) -> None:
        pass


def invocation(caller: str, payload: str = "", method: str = "") -> rtc.RpcInvocationData:
    return rtc.RpcInvocationData("req-1", caller, payload, 5.0, method)


async def next_events(session: LiveKitRoomSession, count: int) -> list[InputEvent]:
    out: list[InputEvent] = []
    events = session.events()
    while len(out) < count:
        out.append(await asyncio.wait_for(anext(events), 5))
    return out


@pytest.fixture
async def started() -> AsyncIterator[tuple[LiveKitRoomSession, FakeRoom]]:
    room = FakeRoom()
    room.remote_participants[AGENT] = FakeParticipant(AGENT)
    join = RoomJoin(url="ws://x", token="t", room="r", identity="avatar", agent_identity=AGENT)
    session = LiveKitRoomSession(
        join,
        Settings.model_validate({}),
        frame_size=(64, 64),
        gestures=("mini_wave_hello",),
        room_factory=lambda: room,  # type: ignore[arg-type,return-value]
    )
    await session.start()
    try:
        yield session, room
    finally:
        await session.aclose()


async def test_it_joins_without_auto_subscribe_and_publishes_mic_and_camera(
    started: tuple[LiveKitRoomSession, FakeRoom],
) -> None:
    _, room = started
    assert room.options is not None and room.options.auto_subscribe is False
    assert {names.LK_TOPIC_TRANSCRIPTION, names.LK_TOPIC_AGENT_SESSION} <= room.streams.keys()
    assert {names.LK_RPC_CLEAR_BUFFER, names.RPC_TRIGGER_DYNAMICS} <= room.local_participant.rpc.keys()
    audio, video = room.local_participant.published
    assert audio.source == rtc.TrackSource.SOURCE_MICROPHONE
    assert video.source == rtc.TrackSource.SOURCE_CAMERA
    assert (video.video_codec, video.simulcast) == (rtc.VideoCodec.H264, False)
    assert (video.video_encoding.max_bitrate, video.video_encoding.max_framerate) == (2_000_000, 25)


async def test_agent_audio_becomes_speech_and_a_segment_end_others_are_ignored(
    started: tuple[LiveKitRoomSession, FakeRoom],
) -> None:
    session, room = started
    pcm = np.arange(300, dtype=np.int16).repeat(2).tobytes()  # stereo
    stranger = FakeReader([pcm], {"sample_rate": "48000", "num_channels": "2"}, "S0")
    room.streams[names.LK_TOPIC_AUDIO_STREAM](stranger, "intruder")
    room.streams[names.LK_TOPIC_AUDIO_STREAM](
        FakeReader([pcm[:301], pcm[301:]], {"sample_rate": "48000", "num_channels": "2"}), AGENT
    )

    events = await next_events(session, 3)

    assert stranger.closed
    chunks = [e for e in events if isinstance(e, SpeechChunk)]
    assert {(c.sample_rate, c.channels) for c in chunks} == {(48_000, 2)}
    assert np.array_equal(np.concatenate([c.pcm for c in chunks]), np.frombuffer(pcm, np.int16))
    assert isinstance(events[-1], SegmentEnd)


async def test_clear_buffer_only_from_the_agent(started: tuple[LiveKitRoomSession, FakeRoom]) -> None:
    session, room = started
    handler = room.local_participant.rpc[names.LK_RPC_CLEAR_BUFFER]

    assert await handler(invocation("intruder")) == "reject"
    assert await handler(invocation(AGENT)) == "ok"
    assert await next_events(session, 1) == [ClearBuffer()]


async def test_trigger_dynamics_replies_and_refuses_malformed_payloads(
    started: tuple[LiveKitRoomSession, FakeRoom],
) -> None:
    session, room = started
    handler = room.local_participant.rpc[names.RPC_TRIGGER_DYNAMICS]

    known = json.loads(handler(invocation("anyone", json.dumps({"action": "mini_wave_hello"}))))
    unknown = json.loads(handler(invocation("anyone", json.dumps({"action": "moonwalk"}))))
    with pytest.raises(rtc.RpcError):
        handler(invocation("anyone", "{"))

    assert (known["animation_triggered"], unknown["animation_triggered"]) == (True, False)
    assert await next_events(session, 1) == [Gesture("mini_wave_hello")]  # the unknown one emits nothing


async def test_the_input_closes_when_the_agent_leaves(started: tuple[LiveKitRoomSession, FakeRoom]) -> None:
    session, room = started
    room.handlers["participant_disconnected"](FakeParticipant("viewer", kind=0))
    room.handlers["participant_disconnected"](FakeParticipant(AGENT))

    assert await next_events(session, 1) == [InputClosed("agent left", drain=False)]
    assert session.closed_reason == "agent left"


def frame(index: int, segment: int | None, end: bool = False) -> AvatarFrame:
    speaking = segment is not None
    audio = np.full(SAMPLES_PER_FRAME, 1000 if speaking else 0, np.int16)
    image = np.zeros((64, 64, 3), np.uint8)
    return AvatarFrame(index, image, audio, speaking, segment, end, None, 0.0)


async def test_a_played_segment_is_reported_once_with_exactly_the_protocol_keys(
    started: tuple[LiveKitRoomSession, FakeRoom],
) -> None:
    session, room = started
    room.streams[names.LK_TOPIC_AUDIO_STREAM](
        FakeReader([b"\x01\x00" * 640], {"sample_rate": "16000", "num_channels": "1"}), AGENT
    )
    await next_events(session, 2)
    for i, seg in enumerate([None, 1, 1, 1, None, None]):
        await session.sink.write(frame(i, seg, end=(i == 3)))
    await asyncio.sleep(0.3)  # the report waits for the queued audio to play out

    finished = [c for c in room.local_participant.calls if c[1] == names.LK_RPC_PLAYBACK_FINISHED]
    assert len(finished) == 1 and finished[0][0] == AGENT
    assert json.loads(finished[0][2]) == {"playback_position": 0.12, "interrupted": False}
    started_calls = [c for c in room.local_participant.calls if c[1] == names.LK_RPC_PLAYBACK_STARTED]
    assert len(started_calls) == 1  # UNSUPPORTED_METHOD: not retried


async def test_a_clear_that_arrives_after_the_stream_ended_but_before_its_audio_played_is_an_interruption(
    started: tuple[LiveKitRoomSession, FakeRoom],
) -> None:
    """The agent closed the stream (segment end written) and then cleared: one report, interrupted,
    at less than was written; the normal report due at the audio's end never follows."""
    session, room = started
    room.streams[names.LK_TOPIC_AUDIO_STREAM](
        FakeReader([b"\x01\x00" * 640], {"sample_rate": "16000", "num_channels": "1"}), AGENT
    )
    await next_events(session, 2)
    for i in range(10):  # 0.4 s of speech, ended; most of it is still in the audio queue
        await session.sink.write(frame(i, 1, end=(i == 9)))
    assert await room.local_participant.rpc[names.LK_RPC_CLEAR_BUFFER](invocation(AGENT)) == "ok"
    await asyncio.sleep(0.6)  # past the moment the normal report was due

    finished = [
        json.loads(c[2]) for c in room.local_participant.calls if c[1] == names.LK_RPC_PLAYBACK_FINISHED
    ]
    assert len(finished) == 1
    assert finished[0]["interrupted"] is True and finished[0]["playback_position"] < 0.4


async def run_video_check(publisher: Any, monkeypatch: pytest.MonkeyPatch, encoded: int) -> None:
    """The publisher's video check, run again on a short clock with ``encoded`` frames in the track's
    stats once a picture was handed to it; returns when the check has ended."""
    import farm.stream.livekit.publisher as publisher_module

    monkeypatch.setattr(publisher_module, "VIDEO_CHECK_S", 0.01)
    monkeypatch.setattr(publisher, "video_frames_encoded", lambda: asyncio.sleep(0, encoded))
    assert publisher._video_watch is not None
    publisher._video_watch.cancel()  # the one started at publish, on the default check time
    publisher.pictures = 1  # a picture was handed to the track
    publisher._video_watch = asyncio.get_running_loop().create_task(publisher._watch_video())
    await asyncio.wait_for(publisher._video_watch, 5)


@pytest.mark.parametrize(("encoded", "republished"), [(0, 2), (25, 0)])
async def test_a_video_track_that_encodes_nothing_is_published_again(
    started: tuple[LiveKitRoomSession, FakeRoom],
    monkeypatch: pytest.MonkeyPatch,
    encoded: int,
    republished: int,
) -> None:
    """The SDK rarely publishes the camera track and never starts its encoder (the audio plays, no
    viewer sees a picture): a track that encoded nothing after pictures were handed to it is
    published again, twice at most; one that encodes is left alone."""
    session, room = started
    publisher = session.publisher
    await run_video_check(publisher, monkeypatch, encoded)
    assert publisher.video_republishes == republished
    local = room.local_participant
    assert local.unpublished == ["TR_2", "TR_3"][:republished]  # the camera track each time, never the mic
    assert len(local.published) == 2 + republished
    assert all(o.source == rtc.TrackSource.SOURCE_CAMERA for o in local.published[2:])


async def test_a_republish_that_fails_ends_the_check_quietly(
    started: tuple[LiveKitRoomSession, FakeRoom], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The room can go away between the check and the republish: the check ends, nothing is raised
    into the loop (the session ends on its own)."""
    session, room = started
    publisher = session.publisher

    async def gone(*_: Any) -> None:
        raise rtc.ConnectError("the room is gone")

    monkeypatch.setattr(room.local_participant, "publish_track", gone)
    await run_video_check(publisher, monkeypatch, encoded=0)  # returns, does not raise
    assert publisher.video_republishes == 1


@pytest.mark.parametrize(
    ("encoder", "frame_size", "pre_encoded"),
    [("sdk", (64, 64), False), ("farm", (64, 64), True), ("farm", (63, 64), False)],
)
async def test_the_video_encoder_setting_picks_who_encodes_the_camera_track(
    encoder: str, frame_size: tuple[int, int], pre_encoded: bool
) -> None:
    """``video_encoder=farm`` publishes the camera track pre-encoded from the farm's own encoder (and
    pictures go to it); odd frame sides, and ``sdk``, leave the encoding to the SDK."""
    room = FakeRoom()
    room.remote_participants[AGENT] = FakeParticipant(AGENT)
    join = RoomJoin(url="ws://x", token="t", room="r", identity="avatar", agent_identity=AGENT)
    session = LiveKitRoomSession(
        join,
        Settings.model_validate({"video_encoder": encoder}),
        frame_size=frame_size,
        gestures=(),
        poster=np.full((frame_size[1], frame_size[0], 3), 128, dtype=np.uint8),
        room_factory=lambda: room,  # type: ignore[arg-type,return-value]
    )
    await session.start()
    try:
        camera = room.local_participant.published[1]
        assert camera.source == rtc.TrackSource.SOURCE_CAMERA
        assert (camera.video_encoder == 6) is pre_encoded  # ENCODER_BACKEND_PRE_ENCODED
        assert (session.publisher.encoder is not None) is pre_encoded
        if session.publisher.encoder is not None:
            stats = session.publisher.encoder.stats
            await asyncio.wait_for(_until(lambda: stats.encoded >= 1), 5)  # the idle picture
            assert stats.keyframes == 1 and stats.failed == 0
    finally:
        await session.aclose()


async def _until(check: Any) -> None:
    while not check():
        await asyncio.sleep(0.01)
