"""``farm demo --room``: the whole local experience with real parts.

Starts a real ``livekit-server`` (``farm.devtools.livekit_server``), a farm (embedded Redis, the API, an
essence and a build worker), builds the sample avatar, mints a runtime key, and starts a scripted
voice agent (``farm.devtools.demo_agent``: a real livekit-agents worker using the real
``livekit-plugins-bithuman``) that the server dispatches into a room, where it says a few lines
through the avatar. It prints the room and the viewer URL to open in a browser, runs for
``duration_s`` (or until Ctrl-C / SIGTERM), and stops everything it started.

libwebrtc ignores loopback, so the server listens on this machine's non-loopback address
(``default_node_ip``); on a machine without one, run it under ``scripts/netns-run``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from livekit import api

from farm.client import AvatarError, AvatarSession
from farm.devtools.demo import Progress, make_demo_key, portrait_png
from farm.devtools.livekit_server import LocalLiveKitServer, default_node_ip, ensure_binary
from farm.infra.procs import LocalFarm, api_url
from farm.kernel.errors import FarmError
from farm.kernel.settings import Settings

DEMO_LINES = (
    "Hello! I am an avatar rendered by the farm, in a real LiveKit room.",
    "A voice agent speaks through me with the bitHuman plugin.",
    "Everything you see runs on this machine.",
)
AGENT_NAME = "farm-demo"


def run_room_demo(settings: Settings, env: Mapping[str, str], *, duration_s: float) -> int:
    """The whole room demo; returns a process exit code. Stops whatever it started, also on failure."""
    host = default_node_ip()
    if host.startswith("127."):
        print("no non-loopback address here (libwebrtc ignores loopback): run under scripts/netns-run")
        return 1
    binary = ensure_binary(env.get("LIVEKIT_SERVER_BIN"), say=lambda line: print(line, flush=True))
    logs = settings.data_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    server = LocalLiveKitServer(binary, host, log_path=logs / "livekit-server.log")
    local: LocalFarm | None = None
    stop = _stop_event()
    try:
        server.start()
        print(f"1/5 {server.label} at {server.url}", flush=True)
        settings = settings.model_copy(
            update={
                "livekit_url": server.url,
                "livekit_api_key": server.api_key,
                "livekit_api_secret": server.api_secret,
            }
        )
        local = LocalFarm(settings, env)
        local.start_redis()
        local.start_api()
        local.start_worker("essence")
        local.start_worker("build")
        local.wait_api(120)
        print(f"2/5 farm API at {api_url(settings)}", flush=True)
        secret = make_demo_key(settings)
        agent_id = _sample_agent(settings, secret)
        runtime_key = _mint(settings, secret, agent_id)
        print("3/5 sample avatar ready; minted a runtime key for the plugin", flush=True)
        agent_log = _start_agent(local, server, logs)
        room = asyncio.run(_dispatch(server, settings, runtime_key, agent_id))
        print(f"4/5 agent dispatched into room {room!r}", flush=True)
        print(f"    watch it in a browser: {_viewer_url(settings, secret, room, duration_s)}", flush=True)
        print(f"5/5 running for {duration_s:g} s (Ctrl-C stops everything)", flush=True)
        stop.wait(duration_s)
        played = agent_log.read_text(errors="replace").count("line played out")
        print(f"lines played out through the avatar: {played}", flush=True)
        return 0 if played > 0 else 1
    except (AvatarError, FarmError, TimeoutError, httpx.HTTPError) as exc:
        print(f"room demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping what the demo started …", flush=True)
        if local is not None:
            local.stop()
        server.stop()


def _stop_event() -> threading.Event:
    """Set on SIGINT/SIGTERM, so the demo stops cleanly from either."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    return stop


def _sample_agent(settings: Settings, secret: str) -> str:
    with AvatarSession(api_url=api_url(settings), api_secret=secret, max_retries=0) as farm:
        agent = farm.create_agent(portrait_png())
        agent = farm.wait_agent(agent.agent_id, deadline_s=600, on_status=Progress(agent.agent_id))
        if agent.status != "ready":
            raise FarmError(f"the avatar build failed: {agent.raw.get('error_message')}")
        deadline = time.monotonic() + 300
        while farm.fleet()["queues"].get("essence", {}).get("ready", 0) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError("no READY essence worker after 300 s")
            time.sleep(0.5)
        return agent.agent_id


def _mint(settings: Settings, secret: str, agent_id: str) -> str:
    response = httpx.post(
        f"{api_url(settings)}/v1/runtime-tokens/mint",
        json={"ttl_s": 3600, "agent_id": agent_id, "max_concurrency": 2},
        headers={"api-secret": secret},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["runtime_key"])


def _start_agent(local: LocalFarm, server: LocalLiveKitServer, logs: Path) -> Path:
    env = {
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }
    child = local.spawn("demo-agent", [sys.executable, "-m", "farm.devtools.demo_agent"], env)
    deadline = time.monotonic() + 120
    while "registered worker" not in child.log_path.read_text(errors="replace"):
        local.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError("the demo agent did not register with livekit-server in 120 s")
        time.sleep(0.2)
    return child.log_path


async def _dispatch(server: LocalLiveKitServer, settings: Settings, runtime_key: str, agent_id: str) -> str:
    room = f"farm-demo-{uuid.uuid4().hex[:6]}"
    spec: dict[str, Any] = {
        "api_url": f"{api_url(settings)}/v1/runtime-tokens/request",
        "api_secret": runtime_key,
        "avatar_id": agent_id,
        "lines": list(DEMO_LINES),
    }
    http_url = server.url.replace("ws://", "http://")
    async with api.LiveKitAPI(http_url, server.api_key, server.api_secret) as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=60))
        await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=AGENT_NAME, room=room, metadata=json.dumps(spec))
        )
    return room


def _viewer_url(settings: Settings, secret: str, room: str, duration_s: float) -> str:
    """A subscribe-only viewer link from the farm's API, once the avatar's session exists (the
    plugin asks for it when the agent's job starts)."""
    deadline = time.monotonic() + 60
    ttl_s = int(min(24 * 3600, max(600, duration_s + 600)))
    while True:
        response = httpx.post(
            f"{api_url(settings)}/v1/rooms/{room}/viewer",
            json={"ttl_s": ttl_s},
            headers={"api-secret": secret},
            timeout=30,
        )
        if response.status_code == 200:
            return str(response.json()["viewer_url"])
        if response.status_code != 404 or time.monotonic() > deadline:
            response.raise_for_status()
            raise TimeoutError(f"no avatar session in room {room!r} after 60 s")
        time.sleep(0.3)
