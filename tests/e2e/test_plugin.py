"""The real livekit-plugins-bithuman, in every mode, against a real farm and a real livekit-server.

A real farm (``farm.infra.procs.LocalFarm``: embedded Redis, the HTTP API, Celery workers for essence,
expression and build) and a real livekit-agents worker (``tests/e2e/plugin_agent.py``) registered
with the real server. Each test dispatches the agent into a fresh room through the server's
AgentDispatch API; the agent's job runs ``bithuman.AvatarSession(api_url=<farm>, ...).start(...)``
inside its job context and then a script (speak, interrupt, trigger a gesture, leave), reporting
each outcome as a JSON line. What the avatar did is also checked on the server (who is in the room).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from livekit import api, rtc
from livekit.agents.voice.avatar import DataStreamAudioOutput

from farm.infra.procs import LocalFarm, free_port
from farm.infra.redis_conn import connect
from farm.kernel.domain import Session
from farm.kernel.settings import Settings
from farm.render.essence import sample_portrait
from farm.sessions.redis_store import RedisSessionStore
from farm.tenancy.api_keys import RedisKeyStore
from tests.e2e.conftest import LkBackend
from tests.e2e.plugin_agent import AGENT_NAME, AVATAR_IDENTITY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
CAPACITY = 2  # essence worker slots: on the 2-core CI machine the agents, viewers and server share its cores
TENANT = "plugin-e2e"
AGENT_CLEAR_WAIT_MS = 1000.0 * (
    inspect.signature(DataStreamAudioOutput).parameters["clear_buffer_timeout"].default or 2.0
)
"""How long the plugin's audio output waits for the avatar's interrupted report (livekit-agents: 2 s)."""


@dataclass
class PluginFarm:
    farm: LocalFarm
    api_url: str
    secret: str
    agent_id: str
    image_path: Path
    lk: LkBackend
    tmp: Path

    def spec(self, **fields: Any) -> dict[str, Any]:
        report = self.tmp / f"report-{uuid.uuid4().hex[:8]}.jsonl"
        base = {"api_url": f"{self.api_url}/v1/runtime-tokens/request", "api_secret": self.secret}
        return {**base, "report": str(report), **fields}


def _wait(probe: Any, deadline_s: float, what: str) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} not within {deadline_s} s")


@pytest.fixture(scope="module")
def plugin_farm(lk_backend: LkBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginFarm]:
    tmp = tmp_path_factory.mktemp("plugin-farm")
    settings = Settings.model_validate(
        {
            "data_dir": tmp / "var",
            "output_dir": tmp / "out",
            "api_host": "127.0.0.1",
            "api_port": free_port(),
            "essence_size": 256,
            "expression_size": 256,
            "worker_capacity": CAPACITY,
            "livekit_url": lk_backend.url,
            "livekit_api_key": lk_backend.api_key,
            "livekit_api_secret": lk_backend.api_secret,
        }
    )
    farm = LocalFarm(settings, dict(os.environ), log_dir=tmp / "logs")
    try:
        redis_url = farm.start_redis()
        farm.start_api()
        farm.start_worker("essence", concurrency=CAPACITY)
        farm.start_worker("expression", concurrency=2)
        farm.start_worker("build")
        farm.wait_api(120)
        _, secret = RedisKeyStore(connect(redis_url)).create(TENANT, "ci")
        base = f"http://127.0.0.1:{settings.api_port}"
        image_path = tmp / "face.png"
        cv2.imwrite(str(image_path), cv2.cvtColor(sample_portrait(), cv2.COLOR_RGB2BGR))
        with httpx.Client(base_url=base, headers={"api-secret": secret}, timeout=30) as client:
            created = client.post("/v1/agents", files={"image": ("face.png", image_path.read_bytes())})
            assert created.status_code == 201, created.text
            agent_id = created.json()["agent_id"]
            _wait(
                lambda: client.get(f"/v1/agents/{agent_id}").json()["data"]["status"] == "ready",
                120,
                "agent build",
            )
            _wait(lambda: _workers_ready(client), 120, "essence and expression workers READY")
        yield PluginFarm(farm, base, secret, agent_id, image_path, lk_backend, tmp)
    finally:
        farm.stop()


def _workers_ready(client: httpx.Client) -> bool:
    queues = client.get("/v1/fleet").json()["queues"]
    return all(queues.get(q, {}).get("ready", 0) > 0 for q in ("essence", "expression"))


@pytest.fixture(scope="module")
def agent_worker(plugin_farm: PluginFarm) -> Iterator[None]:
    """The real livekit-agents worker, registered with the real server."""
    lk = plugin_farm.lk
    env = {
        **os.environ,
        "LIVEKIT_URL": lk.url,
        "LIVEKIT_API_KEY": lk.api_key,
        "LIVEKIT_API_SECRET": lk.api_secret,
    }
    log_path = plugin_farm.tmp / "logs" / "plugin-agent.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.plugin_agent"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    try:
        _wait(lambda: "registered worker" in log_path.read_text(), 60, "the agent worker registered")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


async def dispatch(pf: PluginFarm, spec: dict[str, Any]) -> str:
    """Create a room and dispatch the agent into it with ``spec``; returns the room name."""
    room = f"plugin-{uuid.uuid4().hex[:8]}"
    async with pf.lk.api() as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=30))
        await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=AGENT_NAME, room=room, metadata=json.dumps(spec))
        )
    return room


async def report(spec: dict[str, Any], step: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """The first report line of ``step`` (waits for it)."""
    path = Path(spec["report"])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                entry: dict[str, Any] = json.loads(line)
                if entry["step"] == step:
                    return entry
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no {step!r} report in {timeout_s} s: {path.read_text() if path.exists() else ''}")


async def avatar_in_room(pf: PluginFarm, room: str) -> bool:
    async with pf.lk.api() as lkapi:
        listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return any(p.identity == AVATAR_IDENTITY for p in listed.participants)


async def wait_avatar_gone(pf: PluginFarm, room: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while await avatar_in_room(pf, room):
        assert time.monotonic() < deadline, "the avatar did not leave after its agent"
        await asyncio.sleep(0.2)


def room_sessions(pf: PluginFarm, room: str) -> list[Session]:
    assert pf.farm.redis_url is not None
    store = RedisSessionStore(connect(pf.farm.redis_url))
    return [s for s in store.list_for_tenant(TENANT) if s.livekit is not None and s.livekit.room == room]


async def wait_session_ended(pf: PluginFarm, room: str, timeout_s: float = 10.0) -> Session:
    """The farm session of ``room`` once terminal (the plugin's aclose removes the avatar; the worker
    ends the session at once: nobody is left to hear queued speech)."""
    deadline = time.monotonic() + timeout_s
    while True:
        sessions = room_sessions(pf, room)
        assert len(sessions) == 1, sessions
        if not sessions[0].live:
            return sessions[0]
        assert time.monotonic() < deadline, f"the farm session of {room} is still {sessions[0].state}"
        await asyncio.sleep(0.1)


async def full_script(pf: PluginFarm, **avatar: Any) -> None:
    """Join, one segment plays out with one report, an interruption, a gesture, leave together."""
    spec = pf.spec(**avatar, steps=["say", "interrupt", "dynamics", "leave"])
    room = await dispatch(pf, spec)

    start = await report(spec, "start")
    assert start["ok"] and start["joined"], start
    said = await report(spec, "say")
    assert said["interrupted"] is False
    assert len(said["finished"]) == 1 and said["finished"][0]["interrupted"] is False
    assert said["finished"][0]["position"] == pytest.approx(1.2, abs=0.25)
    cut = await report(spec, "interrupt")
    assert cut["interrupted"] is True
    assert [f["interrupted"] for f in cut["finished"]] == [True]
    assert cut["finished"][0]["position"] < 5.0
    gesture = await report(spec, "dynamics")
    assert gesture["reply"]["status"] == "success" and gesture["reply"]["animation_triggered"] is True
    await report(spec, "leave")
    left_at = time.monotonic()
    await wait_avatar_gone(pf, room)
    ended = await wait_session_ended(pf, room)  # aclose() ended the farm session and freed its slot
    print(f"\nroom {room}: farm session {ended.state.value} {time.monotonic() - left_at:.2f} s after leave")


async def test_essence_agent_by_avatar_id(plugin_farm: PluginFarm, agent_worker: None) -> None:
    await full_script(plugin_farm, avatar_id=plugin_farm.agent_id)


async def test_essence_2_is_served_by_the_essence_engine(plugin_farm: PluginFarm, agent_worker: None) -> None:
    await full_script(plugin_farm, avatar_id=plugin_farm.agent_id, model="essence-2")


async def test_expression_by_avatar_id_sent_urlencoded(plugin_farm: PluginFarm, agent_worker: None) -> None:
    await full_script(plugin_farm, avatar_id=plugin_farm.agent_id, model="expression")


async def test_expression_from_a_pil_image_sent_multipart(
    plugin_farm: PluginFarm, agent_worker: None
) -> None:
    await full_script(plugin_farm, image_path=str(plugin_farm.image_path), model="expression")


async def test_an_image_without_a_model_is_json_mode_gpu(plugin_farm: PluginFarm, agent_worker: None) -> None:
    await full_script(plugin_farm, image_path=str(plugin_farm.image_path))


REFUSED = [
    ({"api_secret": "farm_wrong-secret"}, "wrong secret"),
    ({"avatar_id": "A00NOSUCH1"}, "unknown avatar"),
    ({"model": "essence-3"}, "a model the farm does not serve"),
    ({"model": "expression-2"}, "the learned model, with no weights configured on this farm"),
]


async def test_refused_starts_fail_in_the_agent_and_start_no_avatar(
    plugin_farm: PluginFarm, agent_worker: None
) -> None:
    """Each refusal in its own room, all at once: the plugin retries a refused start with its default
    options (3 tries, 2 s apart), so one at a time these took ~4.6 s each."""
    specs = []
    for avatar, _ in REFUSED:
        spec = plugin_farm.spec(avatar_id=plugin_farm.agent_id, steps=["leave"])
        spec.update(avatar)
        specs.append(spec)
    rooms = await asyncio.gather(*(dispatch(plugin_farm, spec) for spec in specs))
    starts = await asyncio.gather(*(report(spec, "start", timeout_s=60) for spec in specs))

    for (_, why), start, room in zip(REFUSED, starts, rooms, strict=True):
        assert start["ok"] is False, why
        assert "APIConnectionError" in start["error"], why
        assert not await avatar_in_room(plugin_farm, room), why


async def test_n_plus_one_agents_at_once_n_get_their_avatar_and_the_last_waits_for_a_slot(
    plugin_farm: PluginFarm, agent_worker: None
) -> None:
    hold_s = 6.0
    specs = [
        plugin_farm.spec(avatar_id=plugin_farm.agent_id, steps=["say", "hold", "leave"], hold_s=hold_s)
        for _ in range(CAPACITY + 1)
    ]
    rooms = await asyncio.gather(*(dispatch(plugin_farm, spec) for spec in specs))  # the same instant
    starts = await asyncio.gather(*(report(spec, "start", timeout_s=90) for spec in specs))
    assert all(s["ok"] and s["joined"] for s in starts), starts
    joins = sorted(s["start_to_join_ms"] for s in starts)
    assert joins[CAPACITY - 1] < hold_s * 1000  # N avatars joined at once, nobody waited for a slot
    assert joins[CAPACITY] > hold_s * 1000  # the (N+1)th waited in the queue until one left
    said = await asyncio.gather(*(report(spec, "say", timeout_s=90) for spec in specs))
    assert all(len(s["finished"]) == 1 for s in said)  # every avatar played its first turn out
    await asyncio.gather(*(report(spec, "leave", timeout_s=90) for spec in specs))
    for room in rooms:
        await wait_avatar_gone(plugin_farm, room)


class AudioViewer:
    """A viewer that subscribes only to the avatar's audio and keeps one level per 10 ms it played."""

    def __init__(self, pf: PluginFarm, room: str) -> None:
        self.pf, self.room_name = pf, room
        self.room = rtc.Room()
        self.levels: list[float] = []  # RMS of each 10 ms frame the viewer's jitter buffer played
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        self.room.on("track_published", self._on_published)
        self.room.on("track_subscribed", self._on_track)
        token = self.pf.lk.token(f"viewer-{uuid.uuid4().hex[:6]}", self.room_name)
        await self.room.connect(self.pf.lk.url, token, rtc.RoomOptions(auto_subscribe=False))
        for participant in self.room.remote_participants.values():
            for publication in participant.track_publications.values():
                self._on_published(publication, participant)

    def _on_published(
        self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if participant.identity == AVATAR_IDENTITY and publication.kind == rtc.TrackKind.KIND_AUDIO:
            publication.set_subscribed(True)

    def _on_track(self, track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._tasks.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: rtc.Track) -> None:
        async for event in rtc.AudioStream(track, sample_rate=16_000, num_channels=1):
            pcm = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float32)
            for part in np.array_split(pcm, max(1, pcm.size // 160)):  # 10 ms each
                self.levels.append(float(np.sqrt(np.mean(part * part))) if part.size else 0.0)

    def spans_s(self, loud: float = 1500.0, gap_s: float = 0.25) -> list[float]:
        """Durations of the loud stretches (speech) the viewer heard, merging gaps under ``gap_s``."""
        spans: list[float] = []
        start = last = None
        for i, level in enumerate(self.levels):
            if level < loud:
                continue
            if start is None or (i - last) * 0.01 > gap_s:  # type: ignore[operator]
                if start is not None:
                    spans.append((last - start + 1) * 0.01)  # type: ignore[operator]
                start = i
            last = i
        if start is not None:
            spans.append((last - start + 1) * 0.01)  # type: ignore[operator]
        return spans

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.room.disconnect()


async def test_at_capacity_and_at_one_and_a_half_times_it_speech_keeps_time_and_every_interrupt_is_honoured(
    plugin_farm: PluginFarm, agent_worker: None
) -> None:
    """Offered load 1.5 N (N = the essence worker's slots): N rooms at once and N/2 more that wait for
    a slot. In every room the voice at a viewer lasts as long as the clip (never stretched), each
    interrupt gets exactly one interrupted report from the avatar before the agent's 2 s wait ends,
    and in one room twenty interrupts in a row still leave the next answer audible; every slot frees
    at the end."""
    offered = CAPACITY + (CAPACITY + 1) // 2
    # The first turns wait for the word ("go") until the N avatars that got a slot have joined: the
    # load measured is N rooms talking, not N talking while the harness still spawns agent processes
    # on the same 2 cores (that starved the agents' own streams: the farm counts such frames as
    # starved_frames). Then a second's hold: the viewers' audio subscriptions are up before the turn.
    go_file = plugin_farm.tmp / f"go-{uuid.uuid4().hex[:8]}"
    steps = ["go", "hold", "say", "interrupt", "answer", "leave"]
    specs = [
        plugin_farm.spec(avatar_id=plugin_farm.agent_id, steps=list(steps), hold_s=1.0, go_file=str(go_file))
        for _ in range(offered)
    ]
    specs[0]["steps"] = ["go", "hold", "say", "interrupt", "burst", "answer", "leave"]
    specs[0]["burst_count"] = 20
    rooms = [f"load-{uuid.uuid4().hex[:8]}" for _ in specs]
    viewers = [AudioViewer(plugin_farm, room) for room in rooms]
    async with plugin_farm.lk.api() as lkapi:
        for room in rooms:
            await lkapi.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=60))
    await asyncio.gather(*(v.connect() for v in viewers))
    try:
        async with plugin_farm.lk.api() as lkapi:
            await asyncio.gather(
                *(
                    lkapi.agent_dispatch.create_dispatch(
                        api.CreateAgentDispatchRequest(
                            agent_name=AGENT_NAME, room=room, metadata=json.dumps(spec)
                        )
                    )
                    for room, spec in zip(rooms, specs, strict=True)
                )
            )
        started = [asyncio.ensure_future(report(spec, "start", timeout_s=150)) for spec in specs]
        pending = set(started)
        while len(pending) > offered - CAPACITY:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        go_file.touch()
        starts = await asyncio.gather(*started)
        assert all(s["ok"] and s["joined"] for s in starts), starts
        said = await asyncio.gather(*(report(spec, "say", timeout_s=150) for spec in specs))
        cuts = await asyncio.gather(*(report(spec, "interrupt", timeout_s=150) for spec in specs))
        burst = await report(specs[0], "burst", timeout_s=180)
        answers = await asyncio.gather(*(report(spec, "answer", timeout_s=180) for spec in specs))
        await asyncio.gather(*(report(spec, "leave", timeout_s=180) for spec in specs))
        for room in rooms:
            await wait_session_ended(plugin_farm, room, timeout_s=20)
    finally:
        await asyncio.gather(*(v.aclose() for v in viewers), return_exceptions=True)

    # every segment reported exactly once; interrupts answered by the avatar, not fabricated
    assert all([f["interrupted"] for f in s["finished"]] == [False] for s in said), said
    assert all([f["interrupted"] for f in c["finished"]] == [True] for c in cuts), cuts
    # The agent waits AGENT_CLEAR_WAIT_MS after its clear_buffer RPC returns, then fabricates an
    # interrupted report itself; measured from before that RPC, a report sooner than the wait is the
    # avatar's own. (The figure, 200 ms p95 asked, is the benchmark's: printed below, not asserted.)
    latencies = [c["interrupt_to_report_ms"] for c in cuts] + burst["latencies_ms"]
    assert len(burst["latencies_ms"]) == 20, burst
    assert all(0 <= ms < AGENT_CLEAR_WAIT_MS for ms in latencies), latencies
    assert [f["interrupted"] for f in burst["finished"]] == [True] * 20
    assert all([f["interrupted"] for f in a["finished"]] == [False] for a in answers), answers
    # The voice keeps time at the viewer: the 1.2 s turn and the 1.5 s answer are not stretched by the
    # farm. An agent on these same 2 cores can send its speech late; the farm plays on (the clock never
    # waits) and counts each such silent frame inside a segment (starved_frames): that gap is allowed
    # on top, and nothing else is. The count cannot tell a late agent from a late path into the
    # worker; `farm bench density` does (agent_behind_ms).
    starved_s: dict[str, float] = {}
    for viewer in viewers:
        timings = room_sessions(plugin_farm, viewer.room_name)[0].timings_ms
        starved_s[viewer.room_name] = timings.get("starved_frames", 0.0) * 0.04
        print(f"\n{viewer.room_name}: spans {viewer.spans_s()} worker {timings}")
    for viewer in viewers:
        spans = [s for s in viewer.spans_s() if s >= 0.5]
        late = starved_s[viewer.room_name]
        assert spans, f"{viewer.room_name}: no speech heard"
        assert 1.2 * 0.9 <= spans[0] <= 1.2 * 1.2 + late, (viewer.room_name, spans, late)
        assert 1.5 * 0.9 <= spans[-1] <= 1.5 * 1.2 + late, (viewer.room_name, spans, late)  # after the cuts
    joins = sorted(s["start_to_join_ms"] for s in starts)
    ordered = sorted(latencies)
    p50, p95 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95)]
    print(
        f"\nload: {offered} rooms on {CAPACITY} slots; joins ms {[round(j) for j in joins]}; "
        f"interrupt→report ms p50 {p50:.0f} p95 {p95:.0f}; "
        f"speech spans s {[[round(s, 2) for s in v.spans_s() if s >= 0.5] for v in viewers]}"
    )
    live = [s for room in rooms for s in room_sessions(plugin_farm, room) if s.live]
    assert live == []  # 0 non-terminal sessions: every slot released
