"""WorkerDynamics: a session attaches with its agent's rules and cooldowns and detaches at its end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from farm.dynamics.base import broadcast
from farm.dynamics.memory import MemoryDynamicsBus
from farm.dynamics.router import LocalSessions
from farm.dynamics.rules import DynamicsConfig, MemoryRulesStore
from farm.dynamics.worker import WorkerDynamics
from farm.kernel.contracts import DynamicsMessage
from farm.kernel.errors import BackendUnavailable

pytestmark = pytest.mark.unit

GESTURES = ("mini_wave_hello", "smile")


class Info:
    stream_id = "TS_1"
    attributes: ClassVar[dict[str, str]] = {"lk.segment_id": "SG_1"}


class Reader:
    info = Info()

    async def _gen(self) -> AsyncIterator[str]:
        yield "oh hi "
        yield "there"

    def __aiter__(self) -> AsyncIterator[str]:
        return self._gen()


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_an_attached_session_gets_topic_rpc_and_rule_triggers_through_one_debounce() -> None:
    rules = MemoryRulesStore()
    rules.put("A1", DynamicsConfig(rules={"hi there": "mini_wave_hello"}, cooldowns_s={"smile": 0.0}))
    bus = MemoryDynamicsBus()
    dynamics = WorkerDynamics(LocalSessions("w1"), bus, rules)
    dynamics.start()
    played: list[str] = []
    attached = dynamics.attach(
        session_id="s1", tenant="t", agent_id="A1", gestures=GESTURES, trigger=played.append
    )

    assert [r.action for r in await attached.watch(Reader())] == ["mini_wave_hello"]
    assert json.loads(attached.rpc('{"action": "mini_wave_hello"}'))["reason"] == "debounced"
    smile = broadcast(bus, DynamicsMessage(tenant="t", action="smile", agent_id="A1"))
    again = broadcast(bus, DynamicsMessage(tenant="t", action="smile", agent_id="A1"))
    assert (smile.sessions_accepted, again.sessions_accepted) == (1, 1)  # agent cooldown override: 0 s
    await settle()
    assert played == ["mini_wave_hello", "smile", "smile"]

    attached.detach()
    assert broadcast(bus, DynamicsMessage(tenant="t", action="smile", agent_id="A1")).sessions_matched == 0


class BrokenRules(MemoryRulesStore):
    def get(self, agent_id: str) -> DynamicsConfig:
        raise BackendUnavailable("redis down (test)")


async def test_a_session_attaches_with_defaults_when_rules_cannot_be_read() -> None:
    dynamics = WorkerDynamics(LocalSessions("w1"), MemoryDynamicsBus(), BrokenRules())
    played: list[str] = []
    attached = dynamics.attach(
        session_id="s1", tenant="t", agent_id="A1", gestures=GESTURES, trigger=played.append
    )
    assert attached.trigger("smile").animation_triggered
    assert attached.trigger("smile").reason == "debounced"  # default 1.5 s cooldown
