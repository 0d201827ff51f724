"""The avatar's tracks in a room: audio (microphone source) + video (camera source), the audio the clock.

``RoomPublisher`` publishes both tracks right after connect, so ``wait_for_join`` (video within 30 s)
and ``wait_remote_track=KIND_VIDEO`` agents proceed at once. Each ``AvatarFrame`` the pump writes is
40 ms of audio, captured into the AudioSource (its ``queue_ms`` queue is the whole jitter buffer and
its back-pressure paces the pump), and, unless the pump skipped it, one picture, captured into the
VideoSource at the moment its audio starts to play (``queued_duration`` after the capture), so
sender-side A/V offset is zero by construction. Video is one H.264 layer, no simulcast, 2 Mbps,
25 fps: LiveKit's default preset for a ~512² track (VP8 ~300 kbps, 20 fps cap, simulcast) decimates
25 fps and blurs the face (the default libwebrtc behaviour under CPU pressure). The SDK encodes by
default; with ``video_encoder=farm`` the worker encodes (``FarmVideoEncoder``) and publishes the
track pre-encoded, answering a new viewer's keyframe request with its next picture.

It also plays the output half of the playback protocol: ``lk.playback_started`` when a segment's
first audio starts to play, exactly one ``lk.playback_finished`` per segment after its last audio
has played out, and, on ``lk.clear_buffer``, interrupted reports for every unreported segment at
once; the queued audio and the pictures not yet shown are dropped at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np
from livekit import rtc
from livekit.rtc._proto import room_pb2  # VideoEncoderBackend is not re-exported by livekit.rtc 1.1.21

from farm.kernel import names
from farm.render.base import FPS, SAMPLE_RATE_HZ, AvatarFrame
from farm.stream.livekit.encoder import FarmVideoEncoder, encodable
from farm.stream.livekit.playback import FRAME_S, Finished, PlaybackEvent, PlaybackTracker, Started

log = logging.getLogger(__name__)

AUDIO_QUEUE_MS = 500  # the jitter buffer: a worker stall shorter than this never reaches the listener
VIDEO_MAX_BITRATE = 2_000_000
RPC_ATTEMPTS = 3
RPC_RETRY_S = 0.1
RPC_RESPONSE_TIMEOUT_S = 5.0
VIDEO_CHECK_S = 3.0  # after publishing, how long the video encoder may take to produce its first frame
VIDEO_REPUBLISHES = 2  # a video track that encodes nothing is published again this many times at most


VIDEO_CODECS = {"h264": rtc.VideoCodec.H264, "vp8": rtc.VideoCodec.VP8}


def video_publish_options(codec: str = "h264", *, pre_encoded: bool = False) -> rtc.TrackPublishOptions:
    """One layer, no simulcast, explicit bitrate and frame rate (see the module docstring);
    ``pre_encoded``: the farm encodes (``FarmVideoEncoder``), the SDK only packetises."""
    options = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA,
        video_codec=VIDEO_CODECS[codec],
        simulcast=False,
        video_encoding=rtc.VideoEncoding(max_bitrate=VIDEO_MAX_BITRATE, max_framerate=FPS),
    )
    if pre_encoded:
        options.video_encoder = room_pb2.ENCODER_BACKEND_PRE_ENCODED  # the SDK only packetises
    return options


def audio_publish_options() -> rtc.TrackPublishOptions:
    return rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)


def to_video_frame(image: np.ndarray) -> rtc.VideoFrame:
    """An (H, W, 3) RGB uint8 image as an RGB24 ``rtc.VideoFrame`` (no RGBA copy: the SDK converts
    RGB24 to I420 natively, 1.1 ms at 512² against 2.6 ms through an RGBA copy)."""
    height, width = image.shape[:2]
    return rtc.VideoFrame(width, height, rtc.VideoBufferType.RGB24, np.ascontiguousarray(image).tobytes())


class RoomPublisher:
    """Publishes frames into a connected room and reports playback to the agent."""

    def __init__(
        self,
        room: rtc.Room,
        frame_size: tuple[int, int],
        tracker: PlaybackTracker,
        agent_identity: Callable[[], str | None],
        *,
        session_id: str = "",
        audio_queue_ms: int = AUDIO_QUEUE_MS,
        video_codec: str = "h264",
        video_encoder: str = "sdk",
    ) -> None:
        self._video_codec = video_codec
        self._room = room
        self._width, self._height = frame_size
        self._tracker = tracker
        self._agent_identity = agent_identity
        self._session_id = session_id
        self._audio = rtc.AudioSource(SAMPLE_RATE_HZ, 1, queue_size_ms=audio_queue_ms)
        self._encoder: FarmVideoEncoder | None = None
        if video_encoder == "farm" and encodable(frame_size):
            self._encoder = FarmVideoEncoder(
                frame_size, video_codec, max_bitrate=VIDEO_MAX_BITRATE, session_id=session_id
            )
        self._video: rtc.VideoSource | rtc.EncodedVideoSource = (
            self._encoder.source()
            if self._encoder is not None
            else rtc.VideoSource(self._width, self._height)
        )
        self._shows: deque[asyncio.TimerHandle] = deque()  # pictures waiting for their audio to play
        self._tasks: set[asyncio.Task[None]] = set()
        self._send_started = True  # until the agent answers UNSUPPORTED_METHOD
        self._published = False
        self._video_track: rtc.LocalVideoTrack | None = None
        self._video_sid = ""
        self._video_watch: asyncio.Task[None] | None = None
        self._last_picture: rtc.VideoFrame | None = None
        self.video_republishes = 0  # video tracks published again because they encoded nothing
        self.closed = False
        self.writable = True  # False once the room is gone: frames are dropped, reports skipped
        self.frames = 0
        self.pictures = 0  # pictures handed to the video source (the viewer's frame rate)
        self.playback_reports: list[dict[str, float | bool]] = []  # what was sent (observability, tests)
        self._speech_writes: deque[float] = deque(maxlen=1000)  # perf_counter of audible speech frames
        self._audio_onsets: dict[int, float] = {}  # segment key -> when its first audio plays out
        self._video_onsets: dict[int, float] = {}  # segment key -> when its first picture was shown
        self.last_speech_frame_at = 0.0  # perf_counter of the last speaking frame written
        self.last_clear_at = 0.0  # perf_counter of the last lk.clear_buffer

    # ------------------------------------------------------------------ lifecycle
    async def publish(self, first: np.ndarray | None = None) -> None:
        """Publish both tracks (call right after connect); ``first`` is shown before any frame is
        written (the avatar's idle picture), so a viewer never sees an empty or black track."""
        participant = self._room.local_participant
        audio_track = rtc.LocalAudioTrack.create_audio_track(names.TRACK_AUDIO_NAME, self._audio)
        video_track = rtc.LocalVideoTrack.create_video_track(names.TRACK_VIDEO_NAME, self._video)
        _, video = await asyncio.gather(  # one renegotiation covers both when the SDK can batch them
            participant.publish_track(audio_track, audio_publish_options()),
            participant.publish_track(video_track, self._video_options()),
        )
        self._video_track, self._video_sid = video_track, video.sid
        self._published = True
        if first is not None:  # after publishing: a picture captured before it never decodes in Chromium
            self._show(to_video_frame(first), None)
        self._video_watch = asyncio.get_running_loop().create_task(self._watch_video())

    # ------------------------------------------------------------------ a video track that sends nothing
    async def video_frames_encoded(self) -> int:
        """Frames the video track's encoder has produced (its ``outbound-rtp`` stats; 0 when none)."""
        if self._video_track is None:
            return 0
        stats = await self._video_track.get_stats()
        return max(
            (
                s.outbound_rtp.outbound.frames_encoded
                for s in stats
                if s.WhichOneof("stats") == "outbound_rtp"
            ),
            default=0,
        )

    async def _watch_video(self) -> None:
        """Rarely the SDK publishes the video track and never starts its encoder: the audio plays,
        livekit-server asks for a keyframe once a second for a minute and no viewer ever sees a
        picture (1 of 10 sessions of a ``farm bench room`` run with the server logging at debug
        level, 2026-12-07; before that, once as an e2e failure, "no video frame at the viewer in
        20 s"). Pictures were handed to the track and none was encoded ``VIDEO_CHECK_S`` later:
        publish the track again, up to ``VIDEO_REPUBLISHES`` times."""
        for _ in range(VIDEO_REPUBLISHES + 1):
            await asyncio.sleep(VIDEO_CHECK_S)
            if self.closed or not self.writable:
                return
            try:
                encoded = await self.video_frames_encoded()
            except Exception:  # no stats (the room is going away): nothing to repair
                return
            if encoded > 0 or self.pictures == 0:
                return
            if self.video_republishes >= VIDEO_REPUBLISHES:
                log.error(
                    "video track sent no frame after %d republishes; the viewers see no picture",
                    self.video_republishes,
                    extra={"session_id": self._session_id},
                )
                return
            try:
                await self.republish_video(f"no frame encoded {VIDEO_CHECK_S:g} s after publishing")
            except Exception as exc:  # the room went away meanwhile: the session ends on its own
                log.warning(
                    "republishing the video track failed",
                    extra={"session_id": self._session_id, "error": type(exc).__name__},
                )
                return

    async def republish_video(self, reason: str) -> None:
        """Unpublish the video track and publish a new one on the same source, showing the last
        picture at once (subscribers get the new track like any other)."""
        participant = self._room.local_participant
        self.video_republishes += 1
        log.warning(
            "republishing the video track: %s",
            reason,
            extra={"session_id": self._session_id, "reason": reason},
        )
        if self._video_sid:
            with contextlib.suppress(Exception):
                await participant.unpublish_track(self._video_sid)
        track = rtc.LocalVideoTrack.create_video_track(names.TRACK_VIDEO_NAME, self._video)
        publication = await participant.publish_track(track, self._video_options())
        self._video_track, self._video_sid = track, publication.sid
        if self._encoder is not None:
            self._encoder.request_keyframe()
        if self._last_picture is not None and not self.closed:
            self._capture(self._last_picture)

    def _video_options(self) -> rtc.TrackPublishOptions:
        return video_publish_options(self._video_codec, pre_encoded=self._encoder is not None)

    def _capture(self, picture: rtc.VideoFrame) -> None:
        if self._encoder is not None:
            self._encoder.show(picture)
        else:
            assert isinstance(self._video, rtc.VideoSource)
            self._video.capture_frame(picture)

    @property
    def encoder(self) -> FarmVideoEncoder | None:
        """The farm's encoder of this session's video (None: the SDK encodes)."""
        return self._encoder

    async def aclose(self) -> None:
        """Report what is left as interrupted, stop the synchroniser. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._video_watch is not None:
            self._video_watch.cancel()
        leftovers = self._tracker.close()
        if self.writable:
            for report in leftovers:
                self._spawn(self._report(report))
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        self._cancel_shows()
        with contextlib.suppress(Exception):
            await self._audio.aclose()
        with contextlib.suppress(Exception):
            if self._encoder is not None:
                await self._encoder.aclose()
            else:
                await self._video.aclose()

    # ------------------------------------------------------------------ frames
    async def write(self, frame: AvatarFrame) -> None:
        """Queue one frame's 40 ms of audio (back-pressure: the audio queue) and schedule its picture
        for the moment that audio starts to play."""
        if self.closed or not self.writable or not self._published:
            return
        audible = self._tracker.audible(frame.segment_id, frame.speaking)
        events = (
            self._tracker.on_frame(frame.segment_id, frame.speaking, frame.segment_end) if audible else []
        )
        audio = frame.audio if audible else np.zeros_like(frame.audio)
        if frame.speaking:
            self.last_speech_frame_at = time.perf_counter()  # a talking mouth, audible or muted
            if audible:
                self._speech_writes.append(self.last_speech_frame_at)
        picture = to_video_frame(frame.image) if frame.image is not None else None
        pcm = np.ascontiguousarray(audio, dtype=np.int16)
        await self._audio.capture_frame(rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE_HZ, 1, pcm.shape[0]))
        ends_in_s = self._audio.queued_duration  # this frame's audio has played out after this long
        starts_in_s = max(0.0, ends_in_s - FRAME_S)
        onset = next((e.segment.key for e in events if isinstance(e, Started)), None)
        if onset is not None:
            self._audio_onsets[onset] = time.perf_counter() + starts_in_s
        if picture is not None:
            self._schedule_show(picture, starts_in_s, onset)
        self.frames += 1
        for event in events:
            self._spawn(self._after(starts_in_s if isinstance(event, Started) else ends_in_s, event))

    def _schedule_show(self, picture: rtc.VideoFrame, delay_s: float, onset: int | None) -> None:
        loop = asyncio.get_running_loop()
        handle = loop.call_later(delay_s, self._show, picture, onset)
        self._shows.append(handle)
        while self._shows and (self._shows[0].cancelled() or self._shows[0].when() <= loop.time()):
            self._shows.popleft()  # shown already

    def _show(self, picture: rtc.VideoFrame, onset: int | None) -> None:
        if self.closed:
            return
        self._capture(picture)
        self._last_picture = picture
        self.pictures += 1
        if onset is not None:
            self._video_onsets[onset] = time.perf_counter()

    def _cancel_shows(self) -> None:
        while self._shows:
            self._shows.popleft().cancel()

    def av_offsets_ms(self) -> list[float]:
        """Per started segment: when its first picture reached the video source minus when its first
        audio started to play (positive = video late). The farm's side of A/V sync."""
        video = self._video_onsets
        return [
            round((video[k] - at) * 1000.0, 1) for k, at in sorted(self._audio_onsets.items()) if k in video
        ]

    def speaking_after(self, since: float) -> int:
        """How many audible speech frames were written after ``since`` (perf_counter)."""
        return sum(1 for at in self._speech_writes if at > since)

    async def clear(self) -> None:
        """``lk.clear_buffer``: drop queued audio and the pictures not yet shown, report every
        unreported segment now."""
        self.last_clear_at = time.perf_counter()
        reports = self._tracker.clear(self._audio.queued_duration)
        self._audio.clear_queue()
        self._cancel_shows()
        for report in reports:
            self._spawn(self._report(report))

    # ------------------------------------------------------------------ playback RPCs
    async def _after(self, delay_s: float, event: PlaybackEvent) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if isinstance(event, Started):
            await self._started()
        elif isinstance(event, Finished) and self._tracker.deliver(event.segment):
            await self._report(event)  # not taken by an lk.clear_buffer while its audio played

    async def _started(self) -> None:
        if not self._send_started:
            return
        try:
            await self._rpc(names.LK_RPC_PLAYBACK_STARTED, "")
        except rtc.RpcError as exc:
            if exc.code == rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD:
                self._send_started = False  # bitHuman cloud and Bey agents do not register it
            else:
                log.warning(
                    "playback_started failed", extra={"session_id": self._session_id, "code": exc.code}
                )

    async def _report(self, report: Finished) -> None:
        payload = report.payload()
        self.playback_reports.append(payload)
        try:
            await self._rpc(names.LK_RPC_PLAYBACK_FINISHED, json.dumps(payload))
        except rtc.RpcError as exc:
            log.warning("playback_finished failed", extra={"session_id": self._session_id, "code": exc.code})

    async def _rpc(self, method: str, payload: str) -> str:
        """Perform an RPC to the agent, 3 attempts 0.1 s apart; UNSUPPORTED_METHOD is not retried."""
        destination = self._agent_identity()
        if destination is None or destination not in self._room.remote_participants:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND, "the agent is not in the room")
        for attempt in range(1, RPC_ATTEMPTS + 1):
            try:
                return await self._room.local_participant.perform_rpc(
                    destination_identity=destination,
                    method=method,
                    payload=payload,
                    response_timeout=RPC_RESPONSE_TIMEOUT_S,
                )
            except rtc.RpcError as exc:
                final = attempt == RPC_ATTEMPTS or exc.code == rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD
                if final:
                    raise
                log.info(
                    "rpc retry", extra={"session_id": self._session_id, "method": method, "attempt": attempt}
                )
                await asyncio.sleep(RPC_RETRY_S)
        raise AssertionError("unreachable")

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
