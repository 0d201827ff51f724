"""No route calls a store, queue or bus on the API's event loop.

With Redis behind them, such a call holds every other request of the process while it waits (a hung
Redis: up to ``api_redis_timeout_s``), ``/healthz`` included. Each store method is wrapped to record
calls made where an event loop is running; FastAPI runs ``def`` routes and dependencies on its thread
pool, so only ``async def`` code reaches the loop, and it must hand such calls to a thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm.api.routes.dynamics import DynamicsServices, install_dynamics
from farm.dynamics.memory import MemoryDynamicsBus
from farm.dynamics.rules import MemoryRulesStore
from farm.kernel.contracts import WorkerInfo
from tests.unit.api_support import ApiHarness, b64, png_bytes
from tests.unit.test_livekit_runtime_tokens import LK_URL, plugin_token

pytestmark = pytest.mark.unit


def _watch(target: object, label: str, on_loop: list[str]) -> None:
    """Wrap every public method of ``target`` (on the instance) to record calls made on a loop."""

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # a thread-pool thread: fine
            else:
                on_loop.append(f"{label}.{name}")
            return method(*args, **kwargs)

        return call

    for name in dir(target):
        method = getattr(target, name)
        if not name.startswith("_") and callable(method) and not asyncio.iscoroutinefunction(method):
            setattr(target, name, wrap(name, method))


def test_no_route_touches_a_store_on_the_event_loop(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path, livekit_url=LK_URL)
    api.registry.publish(
        WorkerInfo(worker_id="w1", hostname="h", pid=1, queues=["essence"], state="READY", capacity=4),
        ttl_s=60,
    )
    bus, rules = MemoryDynamicsBus(), MemoryRulesStore()
    install_dynamics(api.client.app, DynamicsServices(bus=bus, rules=rules))  # type: ignore[arg-type]
    agent = api.agent()
    farm = api.client.app.state.farm  # type: ignore[attr-defined]
    on_loop: list[str] = []
    for label, target in [
        ("store", api.store),
        ("keys", api.keys),
        ("agents", api.agents),
        ("registry", api.registry),
        ("queue", api.queue),
        ("builds", api.builds),
        ("rules", rules),
        ("bus", bus),
        ("replays", farm.replays),
        ("speak_bus", farm.speak_bus),
        ("metering", farm.metering),
        ("limiter", farm.limiter),
        ("sessions", farm.sessions),
        ("agent_service", farm.agent_service),
        ("text", farm.text),
    ]:
        _watch(target, label, on_loop)
    h = api.headers()

    room = {
        "livekit_url": LK_URL,
        "livekit_token": plugin_token(),
        "room_name": "room-1",
        "mode": "cpu",
        "agent_id": agent.id,
    }
    idem = {**h, "Idempotency-Key": "k-1"}
    answers = {
        "runtime token": api.client.post("/v1/runtime-tokens/request", json=room, headers=h),
        "rules": api.client.put(f"/v1/dynamics/{agent.id}/rules", json={"hello": "smile"}, headers=h),
        "session": api.client.post("/v1/sessions", json=api.session_body(avatar_id=agent.id), headers=h),
        "agent": api.client.post("/v1/agents", json={"image": b64(png_bytes())}, headers=idem),
        "agent update": api.client.patch(f"/v1/agents/{agent.id}", json={"system_prompt": "hi"}, headers=h),
        "speak": api.client.post(f"/v1/agent/{agent.id}/speak", json={"message": "hello"}, headers=h),
        "generate": api.client.post(
            "/v1/video/generate", json={"agent_id": agent.id, "text": "Hello."}, headers=idem
        ),
        "tts": api.client.post("/v1/tts", json={"text": "Hello there."}, headers=h),
        "sessions": api.client.get("/v1/sessions", headers=h),
        "fleet": api.client.get("/v1/fleet", headers=h),
    }

    assert {name: a.status_code for name, a in answers.items()} == {
        "runtime token": 200,
        "rules": 400,  # the agent has no gestures: refused after the agent was read
        "session": 201,
        "agent": 201,
        "agent update": 200,
        "speak": 200,  # the runtime-token session above is its live room
        "generate": 201,
        "tts": 200,
        "sessions": 200,
        "fleet": 200,
    }, {name: a.text for name, a in answers.items()}
    assert on_loop == [], on_loop
