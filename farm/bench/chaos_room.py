"""`farm bench chaos room-kill`: the worker that publishes an avatar into a LiveKit room is killed.

A private chaos farm (``farm.bench.chaos``) and a LiveKit server (a local ``livekit-server``, or
``--livekit-url``). Per trial: an agent and a viewer join a fresh room; the avatar is requested the
way livekit-plugins-bithuman does (``POST /v1/runtime-tokens/request``); once the viewer gets
video, the publishing worker gets SIGKILL and a fresh worker is started in its place. Reported: the
seconds from the kill to the viewer's first frame on a track published after the kill (what a user
sees as the freeze), and the most avatar video tracks that delivered frames to the viewer in the
same second after the resume (1: no second live publisher). The agent then leaves; the session
must end cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from livekit import rtc

from farm.bench.chaos import ChaosFarm
from farm.bench.common import emit, summary
from farm.bench.room import livekit_token
from farm.bench.roomfarm import LiveKitTarget
from farm.infra.procs import api_url
from farm.kernel import names

FRAMES_BEFORE_KILL = 25  # a second of video: the avatar is really streaming


@dataclass
class TrackWatcher:
    """The viewer: arrival time of every video frame, by the track that carried it."""

    room: rtc.Room = field(default_factory=rtc.Room)
    frames: dict[str, list[float]] = field(default_factory=dict)  # track sid → arrival times
    subscribed_at: dict[str, float] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def attach(self) -> None:
        self.room.on("track_subscribed", self._on_track)

    def _on_track(self, track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self.subscribed_at[track.sid] = time.perf_counter()
            self.frames[track.sid] = []
            self.tasks.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: rtc.Track) -> None:
        async for _ in rtc.VideoStream(track):
            self.frames[track.sid].append(time.perf_counter())

    def count(self) -> int:
        return sum(len(times) for times in self.frames.values())

    def first_frame_after(self, moment: float) -> float | None:
        """The first frame of a track subscribed after ``moment``."""
        firsts = [t[0] for sid, t in self.frames.items() if t and self.subscribed_at[sid] > moment]
        return min(firsts) if firsts else None

    def most_tracks_in_one_second(self, since: float) -> int:
        """The most tracks that delivered a frame within any one-second window after ``since``."""
        windows: dict[int, set[str]] = {}
        for sid, times in self.frames.items():
            for t in times:
                if t > since:
                    windows.setdefault(int(t - since), set()).add(sid)
        return max((len(sids) for sids in windows.values()), default=0)

    def tracks_subscribed_after(self, moment: float) -> int:
        """Video tracks the viewer subscribed to after ``moment`` (each new publisher adds one)."""
        return sum(1 for at in self.subscribed_at.values() if at > moment)

    def old_frames_after(self, since: float, moment: float) -> int:
        """Frames after ``since`` of tracks subscribed before ``moment`` (the killed publisher's)."""
        return sum(
            1
            for sid, times in self.frames.items()
            if self.subscribed_at[sid] <= moment
            for t in times
            if t > since
        )

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.room.disconnect()


async def _until(check: Any, deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {deadline_s:g} s waiting for {what}")
        await asyncio.sleep(0.02)


async def one_trial(farm: ChaosFarm, lk: LiveKitTarget, trial: int) -> dict[str, Any]:
    """One kill in a fresh room; see the module doc."""
    room = f"chaos-{uuid.uuid4().hex[:6]}-{trial}"
    agent = rtc.Room()
    await agent.connect(lk.url, livekit_token(lk.api_key, lk.api_secret, "agent-1", room, kind="agent"))
    viewer = TrackWatcher()
    viewer.attach()
    await viewer.room.connect(
        lk.url, livekit_token(lk.api_key, lk.api_secret, "viewer-1", room, kind="standard")
    )
    attrs = {names.LK_ATTR_PUBLISH_ON_BEHALF: "agent-1", "agent_id": farm.agent_id}
    body = {
        "livekit_url": lk.url,
        "livekit_token": livekit_token(
            lk.api_key, lk.api_secret, names.DEFAULT_AVATAR_IDENTITY, room, kind="agent", attrs=attrs
        ),
        "room_name": room,
        "mode": "cpu",
        "agent_id": farm.agent_id,
    }
    try:
        async with httpx.AsyncClient(base_url=api_url(farm.settings), timeout=30.0) as http:
            response = await http.post(
                "/v1/runtime-tokens/request", json=body, headers={names.HEADER_API_SECRET: farm.secret}
            )
            response.raise_for_status()
            session_id = response.json()["session_id"]
            await _until(lambda: viewer.count() >= FRAMES_BEFORE_KILL, 60.0, "the avatar's video")
            info = (
                await http.get(f"/v1/sessions/{session_id}", headers={names.HEADER_API_SECRET: farm.secret})
            ).json()
            pid = await asyncio.to_thread(farm.worker_pid, str(info["worker_id"]))
            if pid is None:
                raise RuntimeError(f"no registry entry for {info['worker_id']}")
            killed = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(farm.start_worker)
            await _until(lambda: viewer.first_frame_after(killed) is not None, 120.0, "video after the kill")
            resumed = viewer.first_frame_after(killed)
            assert resumed is not None
            await asyncio.sleep(3.0)  # watch for a second publisher
            tracks = viewer.most_tracks_in_one_second(resumed + 0.5)
            new_tracks = viewer.tracks_subscribed_after(killed)
            old_frames = viewer.old_frames_after(resumed + 0.5, killed)
            await agent.disconnect()  # the avatar leaves with its agent
            done = await asyncio.to_thread(farm.client.wait_session, session_id, deadline_s=60.0)
    finally:
        await viewer.aclose()
        await agent.disconnect()
    result = {
        "trial": trial,
        "resume_s": round(resumed - killed, 3),
        "most_live_tracks_after_resume": tracks,
        # a second publisher would be a second track subscribed after the kill; frames of the
        # killed publisher's track that reach the viewer late count in the figure above, not here
        "tracks_subscribed_after_kill": new_tracks,
        "killed_track_frames_after_resume": old_frames,
        "status": done.status,
        "attempts": done.raw.get("attempts"),
    }
    emit({"bench": "chaos", "scenario": "room-kill", **result})
    return result


async def room_kill(farm: ChaosFarm, lk: LiveKitTarget, *, trials: int) -> dict[str, Any]:
    results = []
    for trial in range(trials):
        results.append(await one_trial(farm, lk, trial))
        await asyncio.to_thread(farm.wait_ready_workers, len(farm.workers) - trial - 1)
    return {
        "scenario": "room-kill",
        "against": lk.against,
        "trials": results,
        "resume_s": summary([r["resume_s"] for r in results], digits=3),
        "target": "resume ≤ 3 s, one live publisher",
    }
