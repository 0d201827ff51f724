"""Dynamics end to end on real parts: the production API on a real HTTP server, a real Redis-compatible
server, and two worker processes, each with one topic subscription and real Essence sessions.

Worker processes are ``tests/integration/dynamics_worker.py`` (what a render worker runs for
dynamics), not Celery workers: these tests are about the trigger path, not about task delivery.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import redis
import uvicorn

from farm.api.app import build_app
from farm.api.server import uvicorn_config
from farm.dynamics.base import broadcast
from farm.dynamics.catalogue import previews_dir
from farm.dynamics.previews import write_gesture_previews
from farm.dynamics.redis_bus import RedisDynamicsBus
from farm.kernel.contracts import DynamicsMessage
from farm.kernel.domain import Agent, AgentStatus
from farm.kernel.settings import Settings
from farm.sessions.agents import RedisAgentStore
from farm.tenancy.api_keys import RedisKeyStore

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GESTURES = ["head_tilt", "mini_wave_hello", "smile", "talk_head_nod_subtle"]
AGENT_1, AGENT_2 = "A1DYNAMIC1", "A2DYNAMIC2"


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample portrait's Essence pack at 256 px (a few seconds, once per module)."""
    from farm.render.essence import build_pack, sample_portrait

    return build_pack(sample_portrait(), tmp_path_factory.mktemp("dynamics") / "pack", size=256)


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.events.append(json.loads(line))
                self.changed.notify_all()
        with self.changed:
            self.events.append({"event": "exit"})
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 60) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.events), timeout_s):
                raise AssertionError(f"worker events never matched; got {self.events}")

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def gestures(self) -> list[tuple[str, str]]:
        return [(e["session_id"], e["action"]) for e in self.events if e["event"] == "gesture"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.send({"cmd": "quit"})
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.wait_for(lambda events: events[-1]["event"] == "exit", 5)


@pytest.fixture
def start_worker(redis_url: str, pack: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(worker_id: str, sessions: list[tuple[str, str]]) -> WorkerProcess:
        config = {
            "redis_url": redis_url,
            "worker_id": worker_id,
            "pack": str(pack),
            "sessions": [{"session_id": s, "tenant": "tenant-a", "agent_id": a} for s, a in sessions],
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.dynamics_worker", json.dumps(config)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        worker = WorkerProcess(proc)
        started.append(worker)
        threading.Thread(target=worker.read, daemon=True).start()
        worker.wait_for(lambda events: any(e["event"] in ("ready", "exit") for e in events))
        assert worker.events[0]["event"] == "ready", "the worker process died at start"
        return worker

    yield start
    for worker in started:
        worker.stop()


@dataclass
class Api:
    http: httpx.Client
    settings: Settings

    def post(self, path: str, body: object) -> httpx.Response:
        return self.http.post(path, json=body)


@pytest.fixture
def api(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    """The production app (build_app) served by uvicorn on a free loopback port."""
    _, secret = RedisKeyStore(redis_client).create("tenant-a", "test")
    agents = RedisAgentStore(redis_client)
    for agent_id in (AGENT_1, AGENT_2):
        agent = Agent(
            id=agent_id, tenant="tenant-a", status=AgentStatus.READY, image_ref="sha256/" + "0" * 64
        )
        agents.create(agent.model_copy(update={"gestures": GESTURES}))
    settings = Settings.model_validate({"redis_url": redis_url, "data_dir": tmp_path / "var"})
    server = uvicorn.Server(
        uvicorn_config(build_app(settings), settings, host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"api-secret": secret}, timeout=10
    ) as http:
        yield Api(http, settings)
    server.should_exit = True
    thread.join(timeout=10)


def two_workers(start_worker: Callable[..., WorkerProcess]) -> tuple[WorkerProcess, WorkerProcess]:
    """s1 (agent 1) and s2 (agent 2) on w1; s3 (agent 1) and s4 (agent 2) on w2."""
    w1 = start_worker("w1", [("s1", AGENT_1), ("s2", AGENT_2)])
    w2 = start_worker("w2", [("s3", AGENT_1), ("s4", AGENT_2)])
    return w1, w2


def test_an_agent_trigger_reaches_its_sessions_on_both_workers_and_no_other_agents(
    api: Api, start_worker: Callable[..., WorkerProcess]
) -> None:
    w1, w2 = two_workers(start_worker)
    response = api.post(f"/v1/dynamics/{AGENT_1}/trigger", {"action": "smile"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["sessions_accepted"] == 2 and data["sessions_matched"] == 2
    assert data["workers_reached"] >= 2
    w1.wait_for(lambda events: ("s1", "smile") in [(e.get("session_id"), e.get("action")) for e in events])
    w2.wait_for(lambda events: ("s3", "smile") in [(e.get("session_id"), e.get("action")) for e in events])
    w1.stop()
    w2.stop()
    assert (w1.gestures(), w2.gestures()) == ([("s1", "smile")], [("s3", "smile")])


def test_debounce_and_dedup_hold_across_workers(
    api: Api, start_worker: Callable[..., WorkerProcess], redis_url: str
) -> None:
    w1, w2 = two_workers(start_worker)
    first = api.post(f"/v1/dynamics/{AGENT_1}/trigger", {"action": "mini_wave_hello"}).json()["data"]
    again = api.post(f"/v1/dynamics/{AGENT_1}/trigger", {"action": "mini_wave_hello"}).json()["data"]
    assert (first["sessions_accepted"], again["sessions_accepted"], again["sessions_matched"]) == (2, 0, 2)
    w1.wait_for(lambda events: any(e.get("action") == "mini_wave_hello" for e in events))
    w2.wait_for(lambda events: any(e.get("action") == "mini_wave_hello" for e in events))

    publisher = RedisDynamicsBus(redis_url)
    try:
        message = DynamicsMessage(tenant="tenant-a", action="head_tilt", agent_id=AGENT_1)
        once = broadcast(publisher, message, wait_s=2.0)
        twice = broadcast(publisher, message, wait_s=2.0)
    finally:
        publisher.close()
    assert once.sessions_accepted == 2
    assert [s.reason for ack in twice.acks for s in ack.sessions] == ["duplicate", "duplicate"]

    w1.wait_for(lambda events: sum(e["event"] == "gesture" for e in events) >= 2)
    w2.wait_for(lambda events: sum(e["event"] == "gesture" for e in events) >= 2)
    w1.stop()
    w2.stop()
    assert sorted(w1.gestures()) == [("s1", "head_tilt"), ("s1", "mini_wave_hello")]
    assert sorted(w2.gestures()) == [("s3", "head_tilt"), ("s3", "mini_wave_hello")]


def test_a_keyword_in_a_transcription_fires_its_gesture_once(
    api: Api, start_worker: Callable[..., WorkerProcess]
) -> None:
    rules = api.http.put(f"/v1/dynamics/{AGENT_1}/rules", json={"Hello there": "mini_wave_hello"})
    assert rules.status_code == 200, rules.text
    w1, w2 = two_workers(start_worker)
    # an interim stream of deltas, then the final transcript of the same segment
    w1.send(
        {
            "cmd": "transcript",
            "session_id": "s1",
            "segment_id": "SG_1",
            "chunks": ["well hel", "lo the", "re"],
        }
    )
    w1.send({"cmd": "transcript", "session_id": "s1", "segment_id": "SG_1", "chunks": ["Well, HELLO there!"]})
    w1.wait_for(lambda events: sum(e["event"] == "transcript" for e in events) == 2)
    transcripts = [e["results"] for e in w1.events if e["event"] == "transcript"]
    assert transcripts == [[["mini_wave_hello", True, None]], []]
    w1.wait_for(lambda events: any(e["event"] == "gesture" for e in events))
    w1.stop()
    w2.stop()
    assert w1.gestures() == [("s1", "mini_wave_hello")]
    assert w2.gestures() == []


def test_the_previews_a_build_writes_from_a_real_pack_are_served_as_playable_mp4s(
    api: Api, pack: Path
) -> None:
    from farm.render.essence import load_pack

    loaded = load_pack(pack)
    written = write_gesture_previews(loaded, previews_dir(api.settings.data_dir, AGENT_1))
    assert sorted(written) == GESTURES
    catalogue = api.http.get(f"/v1/dynamics/{AGENT_1}").json()["data"]
    url = catalogue["gestures"]["mini_wave_hello"]
    response = api.http.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.content), mode="r") as container:
        frames = list(container.decode(video=0))
    assert len(frames) == loaded.clip_length("mini_wave_hello")
