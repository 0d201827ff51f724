"""``LiveKitRoomSession``: one session's presence in a LiveKit room, as SessionInput and FrameSink.

It joins as the avatar participant and speaks the LiveKit Agents remote-avatar protocol
(livekit-agents ``voice/avatar``: DataStreamAudioOutput / AvatarRunner):

* before ``connect`` (``RoomOptions(auto_subscribe=False)``) it registers the ``lk.audio_stream``
  byte-stream handler and no-op handlers for ``lk.transcription`` / ``lk.agent.session``; right
  after, the RPCs ``lk.clear_buffer`` and ``trigger_dynamics``, then publishes its tracks
  (``RoomPublisher``);
* audio and ``lk.clear_buffer`` are accepted only from the ``lk.publish_on_behalf`` identity of the
  token (fallback: the first AGENT participant); each byte stream is one segment of s16le PCM in the
  format its attributes declare; the trailer ends it, and so do a newer header or 10 s without data;
* input ends (``InputClosed``) when the agent leaves, the avatar is removed, the room closes, no
  agent audio arrives for ``idle_timeout_s``, or ``max_session_s`` passes.

``session.input`` is the SessionInput and ``session.sink`` the FrameSink a SessionRunner drives;
both start the same connection, and ``aclose`` of the sink (or of the session) leaves the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
from livekit import rtc

from farm.kernel import names
from farm.kernel.domain import RoomJoin
from farm.kernel.errors import FarmError, RoomJoinFailed, UnknownGesture, ValidationError
from farm.kernel.settings import Settings
from farm.render.base import AvatarFrame
from farm.stream.base import (
    ClearBuffer,
    Gesture,
    InputClosed,
    InputEvent,
    SegmentEnd,
    SessionDynamics,
    SpeechChunk,
)
from farm.stream.livekit.playback import PlaybackTracker, Segment
from farm.stream.livekit.protocol import PcmDecoder, dynamics_reply, stream_format
from farm.stream.livekit.publisher import AUDIO_QUEUE_MS, RoomPublisher

log = logging.getLogger(__name__)

STREAM_IDLE_TIMEOUT_S = 10.0  # a segment whose trailer never came ends after this long without data
WATCHDOG_S = 0.5
_ROOM_GONE = (rtc.DisconnectReason.ROOM_DELETED, rtc.DisconnectReason.ROOM_CLOSED)

RoomFactory = Callable[[], rtc.Room]


class LiveKitRoomSession:
    """Both halves of a room session; see the module docstring."""

    def __init__(
        self,
        join: RoomJoin,
        settings: Settings,
        *,
        frame_size: tuple[int, int],
        gestures: Sequence[str] | None = None,
        session_id: str = "",
        room_factory: RoomFactory = rtc.Room,
        poster: np.ndarray | None = None,
    ) -> None:
        self.join = join
        self._poster = poster
        self._settings = settings
        self._frame_size = frame_size
        self._gestures = tuple(gestures) if gestures is not None else None
        self._dynamics: SessionDynamics | None = None
        self._session_id = session_id
        self._room_factory = room_factory
        self._room: rtc.Room | None = None
        self._publisher: RoomPublisher | None = None
        self._tracker = PlaybackTracker()
        self._events: asyncio.Queue[InputEvent] = asyncio.Queue()
        self._agent: str | None = join.agent_identity
        self._current: Segment | None = None  # the open byte stream's segment
        self._connect_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed_reason: str | None = None
        self._started_at = 0.0
        self._last_audio_at = 0.0
        self.input = RoomInput(self)
        self.sink = RoomSink(self)
        self.connected_at: float | None = None  # perf_counter when tracks were published
        self.timings_ms: dict[str, float] = {}  # connect, publish (observability, benchmarks)

    # ------------------------------------------------------------------ lifecycle
    @property
    def room(self) -> rtc.Room:
        if self._room is None:
            raise RuntimeError("the room session is not started")
        return self._room

    @property
    def publisher(self) -> RoomPublisher:
        if self._publisher is None:
            raise RuntimeError("the room session is not started")
        return self._publisher

    @property
    def closed_reason(self) -> str | None:
        """Why the input closed ("agent left", "avatar removed", "room closed", ...), once it has."""
        return self._closed_reason

    @property
    def agent_identity(self) -> str | None:
        return self._agent

    def set_gestures(self, gestures: Sequence[str]) -> None:
        """The gestures ``trigger_dynamics`` may start (the renderer's ``gestures``)."""
        self._gestures = tuple(gestures)

    def use_dynamics(self, dynamics: SessionDynamics) -> None:
        """Answer ``trigger_dynamics`` and watch transcriptions through the worker's dynamics layer
        (debounce, dedup, keyword rules) instead of queueing raw ``Gesture`` events."""
        self._dynamics = dynamics

    async def start(self) -> None:
        """Join the room and publish; idempotent (the input and the sink both call it)."""
        async with self._connect_lock:
            if self._room is not None:
                return
            room = self._room_factory()
            room.register_byte_stream_handler(names.LK_TOPIC_AUDIO_STREAM, self._on_audio_stream)
            room.register_byte_stream_handler(
                names.LK_TOPIC_AGENT_SESSION, lambda reader, _who: reader.close()
            )
            room.register_text_stream_handler(names.LK_TOPIC_TRANSCRIPTION, self._on_transcription)
            room.on("participant_connected", self._on_participant_connected)
            room.on("participant_disconnected", self._on_participant_disconnected)
            room.on("disconnected", self._on_disconnected)
            self._room = room
            try:
                began = time.perf_counter()
                url, token = self.join.url, self.join.token
                if not url or not token:  # join_for_session fills both before a session gets here
                    raise RoomJoinFailed("the room join has no url or token", room=self.join.room)
                await room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
                self.timings_ms["connect"] = round((time.perf_counter() - began) * 1000.0, 1)
            except rtc.ConnectError as exc:
                self._room = None
                raise RoomJoinFailed("could not join the LiveKit room", room=self.join.room) from exc
            participant = room.local_participant
            participant.register_rpc_method(names.LK_RPC_CLEAR_BUFFER, self._on_clear_buffer)
            participant.register_rpc_method(names.RPC_TRIGGER_DYNAMICS, self._on_trigger_dynamics)
            self._publisher = RoomPublisher(
                room,
                self._frame_size,
                self._tracker,
                lambda: self._agent,
                session_id=self._session_id,
                video_codec=self._settings.video_codec,
                video_encoder=self._settings.video_encoder,
            )
            began = time.perf_counter()
            await self._publisher.publish(self._poster)
            self.timings_ms["publish"] = round((time.perf_counter() - began) * 1000.0, 1)
            self._started_at = self._last_audio_at = time.monotonic()
            self.connected_at = time.perf_counter()
            if self._agent is None:
                self._agent = _first_agent(room)
            self._spawn(self._watchdog())
            log.info("joined room", extra={"session_id": self._session_id, "room": self.join.room})

    async def aclose(self) -> None:
        """Leave the room (after reporting unfinished segments). Idempotent."""
        self._close_input("closed")
        if self._publisher is not None:
            await self._publisher.aclose()
        for task in list(self._tasks):
            task.cancel()
        room, self._room = self._room, None
        if room is not None:
            with contextlib.suppress(Exception):
                await room.disconnect()

    # ------------------------------------------------------------------ input
    async def events(self) -> AsyncIterator[InputEvent]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, ClearBuffer):
                # the consumer asks for the next event only after applying this one: from now on
                # every frame it renders is post-interrupt
                self._tracker.barrier()
            if isinstance(event, InputClosed):
                return

    def _close_input(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
            self._events.put_nowait(InputClosed(reason, drain=False))  # nobody is left to hear it
            log.info("room input closed", extra={"session_id": self._session_id, "reason": reason})

    def _accepts(self, identity: str) -> bool:
        if self._agent is None and self._room is not None:
            self._agent = _first_agent(self._room)
        return identity == self._agent

    def _on_audio_stream(self, reader: rtc.ByteStreamReader, identity: str) -> None:
        if self._closed_reason is not None or not self._accepts(identity):
            log.info("ignored an audio stream", extra={"session_id": self._session_id, "sender": identity})
            reader.close()
            return
        self._spawn(self._read_stream(reader))

    async def _read_stream(self, reader: rtc.ByteStreamReader) -> None:
        if self._current is not None:  # a newer header: the previous trailer was lost
            self._end_segment(self._current)
        segment = self._tracker.announce(reader.info.stream_id)
        self._current = segment
        heard = False
        try:
            fmt = stream_format(reader.info.attributes)
            decoder = PcmDecoder(fmt.channels)
            chunks = aiter(reader)
            while True:
                chunk = await asyncio.wait_for(anext(chunks), STREAM_IDLE_TIMEOUT_S)
                if segment.reported or self._current is not segment:
                    break  # cleared (lk.clear_buffer) or superseded: drop the rest
                pcm = decoder.push(chunk)
                if pcm.size:
                    heard = True
                    self._last_audio_at = time.monotonic()
                    self._events.put_nowait(SpeechChunk(pcm, fmt.sample_rate, fmt.channels))
        except StopAsyncIteration:
            pass
        except (TimeoutError, rtc.StreamError, ValidationError) as exc:
            log.warning(
                "audio stream ended abnormally", extra={"session_id": self._session_id, "error": str(exc)}
            )
        finally:
            reader.close()
        if self._current is segment:
            self._end_segment(segment, heard=heard)

    def _end_segment(self, segment: Segment, *, heard: bool = True) -> None:
        """Trailer (or its stand-in) of ``segment``: the renderer flushes it, or it never played."""
        if self._current is segment:
            self._current = None
        if segment.reported:
            return
        if heard:
            self._events.put_nowait(SegmentEnd())
        else:
            empty = self._tracker.finish_empty(segment)
            if empty is not None and self._publisher is not None:
                self._spawn(self._publisher._report(empty))

    # ------------------------------------------------------------------ RPCs
    async def _on_clear_buffer(self, data: rtc.RpcInvocationData) -> str:
        if not self._accepts(data.caller_identity):
            return "reject"
        self._current = None
        self._events.put_nowait(ClearBuffer())
        if self._publisher is not None:
            await self._publisher.clear()
        return "ok"

    def _on_transcription(self, reader: rtc.TextStreamReader, _participant_identity: str) -> None:
        if self._dynamics is None:
            self._spawn(_drain(reader))  # no keyword rules without the dynamics layer
        else:
            self._spawn(self._dynamics.watch(reader))

    def _on_trigger_dynamics(self, data: rtc.RpcInvocationData) -> str:
        try:
            if self._dynamics is not None:
                return self._dynamics.rpc(data.payload)
            return dynamics_reply(data.payload, self._trigger)
        except FarmError as exc:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.APPLICATION_ERROR, exc.message) from exc

    def _trigger(self, action: str) -> None:
        if self._gestures is not None and action not in self._gestures:
            raise UnknownGesture(f"unknown gesture {action!r}")
        self._events.put_nowait(Gesture(action))

    # ------------------------------------------------------------------ room events
    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        if self._agent is None and _is_agent(participant):
            self._agent = participant.identity

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.disconnect_reason in _ROOM_GONE:  # everyone leaves because the room closed
            self._close_input("room closed")
        elif participant.identity == self._agent:
            self._close_input("agent left")

    def _on_disconnected(self, reason: int) -> None:
        if reason == rtc.DisconnectReason.PARTICIPANT_REMOVED:
            self._close_input("avatar removed")
        elif reason in _ROOM_GONE:
            self._close_input("room closed")
        else:
            self._close_input("disconnected")
        if self._publisher is not None:
            self._publisher.writable = False  # nothing more can be published or reported

    async def _watchdog(self) -> None:
        """Idle and max-duration guards."""
        while self._closed_reason is None:
            await asyncio.sleep(WATCHDOG_S)
            now = time.monotonic()
            if now - self._started_at >= self._settings.max_session_s:
                self._close_input("max session duration")
            elif self._current is None and now - self._last_audio_at >= self._settings.idle_timeout_s:
                self._close_input("idle timeout")

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _is_agent(participant: rtc.RemoteParticipant) -> bool:
    """An AGENT participant that is not itself an avatar worker (those publish on someone's behalf)."""
    return (
        participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        and names.LK_ATTR_PUBLISH_ON_BEHALF not in participant.attributes
    )


async def _drain(reader: rtc.TextStreamReader) -> None:
    async for _chunk in reader:
        pass


def _first_agent(room: rtc.Room) -> str | None:
    return next((p.identity for p in room.remote_participants.values() if _is_agent(p)), None)


class RoomInput:
    """The SessionInput half of a LiveKitRoomSession."""

    def __init__(self, session: LiveKitRoomSession) -> None:
        self._session = session

    @property
    def session(self) -> LiveKitRoomSession:
        return self._session

    async def start(self) -> None:
        await self._session.start()

    def events(self) -> AsyncIterator[InputEvent]:
        return self._session.events()

    def use_dynamics(self, dynamics: SessionDynamics) -> None:
        self._session.use_dynamics(dynamics)

    async def aclose(self) -> None:
        self._session._close_input("closed")


class RoomSink:
    """The FrameSink half of a LiveKitRoomSession (real time: the pump keeps 25 fps on the audio clock)."""

    def __init__(self, session: LiveKitRoomSession) -> None:
        self._session = session

    @property
    def realtime(self) -> bool:
        return True

    @property
    def lead_s(self) -> float:
        """The audio queue, less a frame: the pump fills it while speech plays (capture blocks when full)."""
        return AUDIO_QUEUE_MS / 1000.0 - 0.04

    async def start(self) -> None:
        await self._session.start()

    async def write(self, frame: AvatarFrame) -> None:
        if self._session._publisher is not None:
            await self._session._publisher.write(frame)

    async def aclose(self) -> None:
        await self._session.aclose()
