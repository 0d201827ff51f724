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
import pytest
from livekit import api

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
CAPACITY = 3  # essence worker slots
TENANT = "plugin-e2e"


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
    return [s for s in store.list_for_tenant(TENANT) if (s.livekit or {}).get("room") == room]


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


@pytest.mark.parametrize(
    ("avatar", "why"),
    [
        ({"api_secret": "farm_wrong-secret"}, "wrong secret"),
        ({"avatar_id": "A00NOSUCH1"}, "unknown avatar"),
        ({"model": "essence-3"}, "a model the farm does not serve"),
        ({"model": "expression-2"}, "the learned model, with no weights configured on this farm"),
    ],
)
async def test_refused_starts_fail_in_the_agent_and_start_no_avatar(
    plugin_farm: PluginFarm, agent_worker: None, avatar: dict[str, str], why: str
) -> None:
    spec = plugin_farm.spec(avatar_id=plugin_farm.agent_id, steps=["leave"])
    spec.update(avatar)
    room = await dispatch(plugin_farm, spec)

    start = await report(spec, "start", timeout_s=60)
    assert start["ok"] is False, why
    assert "APIConnectionError" in start["error"]
    assert not await avatar_in_room(plugin_farm, room)


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
