"""A room session with the worker's dynamics layer attached: the RPC and keyword rules are debounced.

Against the project's LiveKit-protocol model (inside ``scripts/netns-run``) and, when LIVEKIT_URL /
LIVEKIT_API_KEY / LIVEKIT_API_SECRET are set, against that real server too. The dynamics layer is
the production ``WorkerDynamics`` over an in-memory bus and rules store (the Redis bus is covered
by tests/integration/test_dynamics_*).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm.dynamics.memory import MemoryDynamicsBus
from farm.dynamics.router import LocalSessions
from farm.dynamics.rules import DynamicsConfig, MemoryRulesStore
from farm.dynamics.worker import AttachedSession, WorkerDynamics
from farm.kernel.settings import Settings
from farm.render.pool import ModelPool
from tests.e2e.actors import Agent
from tests.e2e.conftest import LkBackend
from tests.e2e.harness import start_avatar

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

AGENT_CODE = "A0E2ETEST1"  # the agent_id every e2e room session carries


class RecordingDynamics(WorkerDynamics):
    """The production WorkerDynamics, noting every gesture it delivers to the renderer."""

    def __init__(self, rules: MemoryRulesStore) -> None:
        super().__init__(LocalSessions("w-e2e"), MemoryDynamicsBus(), rules)
        self.delivered: list[str] = []

    def attach(self, *, trigger: Callable[[str], None], **kwargs: Any) -> AttachedSession:
        def noted(action: str) -> None:
            self.delivered.append(action)
            trigger(action)

        return super().attach(trigger=noted, **kwargs)


async def rpc(agent: Agent, action: str) -> dict[str, object]:
    reply: dict[str, object] = json.loads(await agent.trigger_dynamics(json.dumps({"action": action})))
    return reply


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_rpc_triggers_are_debounced_and_a_spoken_keyword_fires_its_gesture_once(
    lk_backend: LkBackend, warm_pool: ModelPool, essence_pack: Path, settings: Settings
) -> None:
    rules = MemoryRulesStore()
    rules.put(AGENT_CODE, DynamicsConfig(rules={"hello": "mini_wave_hello"}))
    dynamics = RecordingDynamics(rules)
    dynamics.start()
    name = f"e2e-dyn-{uuid.uuid4().hex[:8]}"
    agent = Agent(lk_backend, name)
    await agent.connect()
    run = await start_avatar(lk_backend, warm_pool, essence_pack, settings, name, dynamics=dynamics)
    try:
        await agent.wait_for_avatar()
        first, again = await rpc(agent, "talk_head_nod_subtle"), await rpc(agent, "talk_head_nod_subtle")
        assert (first["animation_triggered"], again["animation_triggered"]) == (True, False)
        assert again["reason"] == "debounced" and again["animation_debounced"] is True

        await agent.transcribe("Well, HELLO there!", segment_id="SG_1")
        await wait_until(lambda: "mini_wave_hello" in dynamics.delivered)
        await agent.transcribe("Well, HELLO there!", segment_id="SG_1")  # the same final text again
        await agent.transcribe("othello is a play", segment_id="SG_2")  # not a whole-word match
        # The spoken keyword already played the wave, so an explicit one inside its cooldown is refused.
        wave = await rpc(agent, "mini_wave_hello")
        assert wave["animation_triggered"] is False and wave["reason"] == "debounced"
        assert dynamics.delivered == ["talk_head_nod_subtle", "mini_wave_hello"]
    finally:
        await agent.aclose()
        await run.aclose()
        await asyncio.wait_for(run.task, 20)
        dynamics.bus.close()
