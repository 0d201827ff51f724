"""A room session end to end: the farm's avatar joins a LiveKit room next to an agent and a viewer.

Runs against the project's LiveKit-protocol model inside ``scripts/netns-run`` (results are "against
a LiveKit-protocol model") and, when LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET are set, against
that real server too. The avatar side is the production path: SessionRunner + warm Essence pool +
LiveKitRoomSession. The agent speaks the wire protocol of livekit-agents' DataStreamAudioOutput
(tests/e2e/actors.py); the viewer is a plain SDK participant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import ModelKind, SessionState
from farm.kernel.settings import Settings
from farm.render.pool import ModelPool
from tests.e2e.actors import Agent, Viewer, tone
from tests.e2e.conftest import NETNS_ADDRESS, LkBackend, new_room_session
from tests.e2e.harness import RoomRun, distance_to_avatar, e2e_worker, idle_references, start_avatar

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

LOUD = 1500.0  # viewer audio RMS while the tone plays (silence is ~0)
AVATAR_LIKE = 30.0  # mean abs difference to the avatar's own frames (a grey frame is ~60+)


class Room:
    def __init__(self, run: RoomRun, agent: Agent, viewer: Viewer) -> None:
        self.run, self.agent, self.viewer = run, agent, viewer


@contextlib.asynccontextmanager
async def open_room(
    lk_backend: LkBackend, warm_pool: ModelPool, essence_pack: Path, settings: Settings
) -> AsyncIterator[Room]:
    """An agent, the avatar (the production runner) and a viewer that has seen the first pictures."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    agent = Agent(lk_backend, name)
    await agent.connect()
    run = await start_avatar(lk_backend, warm_pool, essence_pack, settings, name)
    viewer = Viewer(lk_backend, name)
    await viewer.connect()
    await agent.wait_for_avatar()
    await viewer.wait(lambda: len(viewer.video) >= 5, what="first video frames")
    try:
        yield Room(run, agent, viewer)
    finally:
        await viewer.aclose()
        if agent.room.isconnected():
            await agent.aclose()
        await run.aclose()
        await asyncio.wait_for(run.task, 20)


@pytest.fixture
async def room(
    lk_backend: LkBackend, warm_pool: ModelPool, essence_pack: Path, settings: Settings
) -> AsyncIterator[Room]:
    async with open_room(lk_backend, warm_pool, essence_pack, settings) as opened:
        yield opened


def loud_since(viewer: Viewer, since: float) -> bool:
    return any(a.level > LOUD for a in viewer.audio if a.at >= since)


async def test_the_viewer_sees_the_avatar_and_hears_each_segment_once_reported(
    room: Room, warm_pool: ModelPool, essence_pack: Path
) -> None:
    refs = idle_references(warm_pool, essence_pack)
    idle_thumbs = [v.image for v in room.viewer.video[-5:] if v.image is not None]
    assert all(distance_to_avatar(t, refs) < AVATAR_LIKE for t in idle_thumbs)
    grey = np.full_like(refs[0], 128)
    assert distance_to_avatar(grey, refs) > AVATAR_LIKE  # the check can fail

    said_at = time.perf_counter()
    await room.agent.say(tone(1.2, 24_000), 24_000)
    await room.agent.say(tone(0.8, 24_000, freq_hz=330.0), 24_000)
    finished = await room.agent.wait_finished(2)

    assert [f.interrupted for f in finished] == [False, False]
    assert finished[0].playback_position == pytest.approx(1.2, abs=0.1)
    assert finished[1].playback_position == pytest.approx(0.8, abs=0.1)
    assert loud_since(room.viewer, said_at)
    speaking = [v.image for v in room.viewer.video if v.at > said_at and v.image is not None]
    assert speaking and min(distance_to_avatar(t, refs) for t in speaking) < AVATAR_LIKE
    await asyncio.sleep(1.0)  # nothing more may come: exactly one report per segment
    assert len(room.agent.finished) == 2 and room.agent.rejected == []


async def test_the_camera_track_encodes_and_a_track_published_again_reaches_the_viewer(room: Room) -> None:
    """The publisher reads the real encoder's stats to find a camera track that sends nothing (the
    SDK rarely never starts its encoder) and publishes it again; here it finds a healthy track, and a
    forced republish reaches the viewer as a new track with pictures."""
    publisher = room.run.room.publisher
    assert await publisher.video_frames_encoded() > 0
    assert publisher.video_republishes == 0
    before = set(room.viewer.video_frames_by_track)
    await publisher.republish_video("forced by the test")
    await room.viewer.wait(
        lambda: any(n >= 5 for sid, n in room.viewer.video_frames_by_track.items() if sid not in before),
        what="pictures on the republished camera track",
    )
    assert await publisher.video_frames_encoded() > 0


async def test_a_late_viewer_asks_for_a_keyframe_and_the_farms_encoder_answers_it(
    lk_backend: LkBackend, warm_pool: ModelPool, essence_pack: Path, settings: Settings
) -> None:
    """With ``video_encoder=farm`` the worker encodes the video itself: a viewer that subscribes
    mid-stream makes the server ask for a keyframe, the encoder's next picture is one, and the late
    viewer decodes pictures of the avatar from it."""
    farm_encoded = settings.model_copy(update={"video_encoder": "farm"})
    async with open_room(lk_backend, warm_pool, essence_pack, farm_encoded) as room:
        encoder = room.run.room.publisher.encoder
        assert encoder is not None and encoder.stats.encoded > 0 and encoder.stats.failed == 0
        asked_before = encoder.stats.keyframe_requests
        late = Viewer(lk_backend, room.run.room.join.room, identity="viewer-late")
        await late.connect()
        try:
            await late.wait(lambda: len(late.video) >= 3, what="the late viewer's first pictures")
            assert encoder.stats.keyframe_requests > asked_before
            refs = idle_references(warm_pool, essence_pack)
            seen = [v.image for v in late.video if v.image is not None]
            assert min(distance_to_avatar(t, refs) for t in seen) < AVATAR_LIKE
        finally:
            await late.aclose()


async def test_clear_buffer_mid_segment_reports_an_interruption_and_returns_to_idle(room: Room) -> None:
    await room.agent.begin(24_000)
    writing = asyncio.create_task(room.agent.write(tone(4.0, 24_000), 24_000, pace=1.0))
    started = time.perf_counter()
    await room.viewer.wait(lambda: loud_since(room.viewer, started), what="speech audio")

    assert await room.agent.clear_buffer() == "ok"
    cleared_at = time.perf_counter()
    writing.cancel()
    await room.agent.flush()  # the agent closes the interrupted stream: no second report may follow
    finished = await room.agent.wait_finished(1)

    assert finished[0].interrupted is True
    assert 0.0 < finished[0].playback_position < 4.0
    publisher = room.run.room.publisher
    assert publisher.speaking_after(cleared_at) == 0  # no speech was published after the clear
    # idle video within 200 ms: the last talking frame went out at most 200 ms after the clear
    assert publisher.last_speech_frame_at - publisher.last_clear_at < 0.2
    await room.viewer.wait(
        lambda: any(a.level < 50 for a in room.viewer.audio if a.at > cleared_at + 0.3), what="silence"
    )
    await asyncio.sleep(0.5)
    assert len(room.agent.finished) == 1

    await room.agent.say(tone(0.6, 16_000), 16_000)  # the next turn plays normally
    after = await room.agent.wait_finished(2)
    assert after[1].interrupted is False
    assert after[1].playback_position == pytest.approx(0.6, abs=0.1)


async def test_trigger_dynamics_answers_for_known_unknown_and_malformed_requests(room: Room) -> None:
    known = json.loads(await room.agent.trigger_dynamics(json.dumps({"action": "mini_wave_hello"})))
    legacy = json.loads(
        await room.agent.trigger_dynamics(
            json.dumps(
                {"action": "talk_head_nod_subtle", "identity": "agent-1", "timestamp": "2026-01-01T00:00:00Z"}
            )
        )
    )
    unknown = json.loads(await room.agent.trigger_dynamics(json.dumps({"action": "moonwalk"})))

    assert known == {
        "action": "mini_wave_hello",
        "animation_triggered": True,
        "service": "avatar-farm",
        "status": "success",
    }
    assert legacy["animation_triggered"] is True
    assert unknown["animation_triggered"] is False and unknown["status"] == "success"
    with pytest.raises(rtc.RpcError) as err:
        await room.agent.trigger_dynamics("not json")
    assert err.value.code == rtc.RpcError.ErrorCode.APPLICATION_ERROR
    assert room.run.session().state == SessionState.STREAMING  # never a crash


async def test_the_avatar_leaves_when_the_agent_leaves(room: Room) -> None:
    gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_left(participant: rtc.RemoteParticipant) -> None:
        if participant.identity == room.agent.avatar_identity and not gone.done():
            gone.set_result(participant.identity)

    room.viewer.room.on("participant_disconnected", on_left)
    await room.agent.aclose()

    result = await room.run.result()
    assert result.session is not None and result.session.state == SessionState.ENDED
    assert result.session.history[-2].reason == "input closed"
    assert room.run.room.closed_reason == "agent left"
    assert await asyncio.wait_for(gone, 10) == room.agent.avatar_identity


async def test_the_session_ends_when_the_avatar_is_removed(room: Room, lk_backend: LkBackend) -> None:
    await lk_backend.remove_participant(room.run.room.join.room, room.agent.avatar_identity)

    result = await room.run.result()
    assert result.session is not None and result.session.state == SessionState.ENDED
    assert room.run.room.closed_reason == "avatar removed"


async def test_audio_and_clear_buffer_from_anyone_but_the_agent_are_refused(
    room: Room, lk_backend: LkBackend
) -> None:
    intruder = Agent(lk_backend, room.run.room.join.room, identity="intruder")
    await intruder.connect()
    try:
        await intruder.wait_for_avatar()
        assert await intruder.clear_buffer() == "reject"
        await intruder.say(tone(0.6, 16_000), 16_000)
        await room.agent.say(tone(0.4, 16_000), 16_000)  # the real agent still gets exactly its report

        finished = await room.agent.wait_finished(1)
        await asyncio.sleep(1.0)
        assert len(finished) == 1 and finished[0].playback_position == pytest.approx(0.4, abs=0.1)
        assert intruder.finished == []
    finally:
        await intruder.aclose()


async def test_a_lost_trailer_is_ended_by_the_next_stream(room: Room) -> None:
    await room.agent.begin(16_000)
    await room.agent.write(tone(0.5, 16_000), 16_000)
    room.agent._writer = None  # the trailer of this stream never arrives
    await room.agent.say(tone(0.5, 16_000), 16_000)

    finished = await room.agent.wait_finished(2)
    assert [f.interrupted for f in finished] == [False, False]


async def test_the_session_ends_when_the_room_is_closed(room: Room, lk_backend: LkBackend) -> None:
    await lk_backend.close_room(room.run.room.join.room)

    result = await room.run.result()
    assert result.session is not None and result.session.state == SessionState.ENDED
    assert room.run.room.closed_reason == "room closed"


async def test_an_idle_room_session_ends_after_the_idle_timeout(
    lk_backend: LkBackend, warm_pool: ModelPool, essence_pack: Path, settings: Settings
) -> None:
    name = f"idle-{uuid.uuid4().hex[:8]}"
    agent = Agent(lk_backend, name)
    await agent.connect()
    try:
        quick = settings.model_copy(update={"idle_timeout_s": 1.0})
        run = await start_avatar(lk_backend, warm_pool, essence_pack, quick, name)
        await agent.say(tone(0.3, 16_000), 16_000)

        result = await run.result(timeout_s=20)
        assert result.session is not None and result.session.state == SessionState.ENDED
        assert run.room.closed_reason == "idle timeout"
        assert len(await agent.wait_finished(1)) == 1  # the segment was reported before leaving
    finally:
        await agent.aclose()


async def test_a_join_that_never_completes_fails_with_room_join_failed_and_frees_the_slot(
    warm_pool: ModelPool, essence_pack: Path, settings: Settings, lk_backend: LkBackend
) -> None:
    """A LiveKit URL whose server accepts the connection and never answers: the join is bounded."""
    hold = socket.socket()
    hold.bind((NETNS_ADDRESS, 0))
    hold.listen(8)  # accepts into the backlog, never speaks WebSocket
    try:
        quick = settings.model_copy(update={"join_timeout_s": 2.0})
        worker = e2e_worker(quick, warm_pool, essence_pack)
        url = f"ws://{NETNS_ADDRESS}:{hold.getsockname()[1]}"
        token = lk_backend.token("bithuman-avatar-agent", "silent-room", kind="agent")
        session, _ = worker.store.create(
            new_room_session({"url": url, "token": token, "room": "silent-room"})
        )
        worker.queue.submit(RunSessionMessage(session_id=session.id, model=ModelKind.ESSENCE))
        await asyncio.to_thread(worker.worker.result, session.id, 30.0)

        failed = worker.store.get(session.id)
        assert failed.state == SessionState.FAILED
        assert failed.failure is not None and failed.failure["code"] == "ROOM_JOIN_FAILED"
        assert worker.runtime.free_slots == worker.runtime.slots.capacity  # nothing left holding a slot
    finally:
        hold.close()
