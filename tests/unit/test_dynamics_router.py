"""LocalSessions: every trigger source ends in LocalSession.trigger; the topic routes by agent/session."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable

import pytest

from farm.dynamics.base import broadcast
from farm.dynamics.memory import MemoryDynamicsBus
from farm.dynamics.router import LocalSessions, handle_trigger_rpc, parse_rpc_payload, threadsafe_deliver
from farm.kernel.contracts import DynamicsMessage
from farm.kernel.errors import MalformedJson, UnknownGesture, ValidationError

pytestmark = pytest.mark.unit

GESTURES = ("mini_wave_hello", "smile", "talk_head_nod_subtle", "head_tilt")


class Played:
    """A deliver callback that records what it played, per session."""

    def __init__(self) -> None:
        self.by_session: dict[str, list[str]] = {}

    def deliver(self, session_id: str) -> Callable[[str], None]:
        return lambda action: self.by_session.setdefault(session_id, []).append(action)


def registry_with(played: Played, *sessions: tuple[str, str, str], worker_id: str = "w1") -> LocalSessions:
    local = LocalSessions(worker_id)
    for session_id, tenant, agent_id in sessions:
        local.register(session_id, tenant, agent_id, GESTURES, played.deliver(session_id))
    return local


def test_a_trigger_plays_then_a_repeat_is_debounced_with_a_reason() -> None:
    played = Played()
    session = registry_with(played, ("s1", "t", "A1")).get("s1")
    assert session is not None
    first, second = session.trigger("mini_wave_hello"), session.trigger("mini_wave_hello")
    assert first.animation_triggered and first.reason is None
    assert not second.animation_triggered and second.reason == "debounced" and second.animation_debounced
    assert played.by_session == {"s1": ["mini_wave_hello"]}


def test_unknown_gestures_and_closed_sessions_play_nothing() -> None:
    played = Played()
    local = registry_with(played, ("s1", "t", "A1"))
    session = local.get("s1")
    assert session is not None
    assert session.trigger("backflip").reason == "unknown_gesture"
    local.unregister("s1")
    assert session.trigger("smile").reason == "session_closed"
    assert played.by_session == {}


def test_a_renderer_refusing_the_name_reports_unknown_gesture() -> None:
    def refuse(action: str) -> None:
        raise UnknownGesture(action)

    session = LocalSessions("w").register("s1", "t", None, GESTURES, refuse)
    assert session.trigger("smile").reason == "unknown_gesture"


def test_a_session_whose_loop_is_gone_refuses_without_breaking_the_others() -> None:
    played = Played()
    local = registry_with(played, ("s2", "t", "A1"))
    loop = asyncio.new_event_loop()
    loop.close()
    local.register("s1", "t", "A1", GESTURES, threadsafe_deliver(loop, lambda action: None))
    ack = local.handle(DynamicsMessage(tenant="t", action="smile", agent_id="A1"))
    reasons = {s.session_id: s.reason for s in ack.sessions}
    assert reasons == {"s1": "delivery_failed", "s2": None}
    assert played.by_session == {"s2": ["smile"]}


def test_the_topic_reaches_the_agents_sessions_of_that_tenant_only() -> None:
    played = Played()
    local = registry_with(played, ("s1", "t", "A1"), ("s2", "t", "A1"), ("s3", "t", "A2"), ("s4", "u", "A1"))
    ack = local.handle(DynamicsMessage(tenant="t", action="smile", agent_id="A1"))
    assert played.by_session == {"s1": ["smile"], "s2": ["smile"]}
    assert ack.worker_id == "w1" and ack.accepted == 2


def test_a_session_message_reaches_only_that_session() -> None:
    played = Played()
    local = registry_with(played, ("s1", "t", "A1"), ("s2", "t", "A1"))
    local.handle(DynamicsMessage(tenant="t", action="smile", session_id="s2", agent_id="A1"))
    local.handle(DynamicsMessage(tenant="other", action="head_tilt", session_id="s1"))
    assert played.by_session == {"s2": ["smile"]}


def test_a_broadcast_delivered_twice_plays_once() -> None:
    played = Played()
    local = registry_with(played, ("s1", "t", "A1"))
    message = DynamicsMessage(tenant="t", action="smile", agent_id="A1")
    local.handle(message)
    again = local.handle(message)
    assert played.by_session == {"s1": ["smile"]}
    assert again.sessions[0].reason == "duplicate"


def test_broadcast_counts_accepting_sessions_over_every_worker() -> None:
    played, bus = Played(), MemoryDynamicsBus()
    bus.start(registry_with(played, ("s1", "t", "A1"), worker_id="w1").handle)
    bus.start(registry_with(played, ("s2", "t", "A1"), ("s3", "t", "A9"), worker_id="w2").handle)
    summary = broadcast(bus, DynamicsMessage(tenant="t", action="smile", agent_id="A1"))
    assert (summary.workers_reached, summary.workers_replied, summary.sessions_accepted) == (2, 2, 2)
    assert summary.complete


def test_rpc_payloads_of_both_reference_eras_are_accepted() -> None:
    assert parse_rpc_payload('{"action": "smile"}') == "smile"
    early = {"action": "mini_wave_hello", "identity": "agent", "timestamp": "2026-01-01T00:00:00Z"}
    assert parse_rpc_payload(json.dumps(early)) == "mini_wave_hello"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ("wave!", MalformedJson),
        ("[1]", MalformedJson),
        ('{"action": 3}', ValidationError),
        ("{}", ValidationError),
    ],
)
def test_bad_rpc_payloads_raise(payload: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_rpc_payload(payload)


def test_the_rpc_reply_has_the_reference_shape_plus_a_reason() -> None:
    session = LocalSessions("w").register("s1", "t", None, GESTURES, lambda action: None)
    session.trigger("smile")
    reply = json.loads(session.trigger("smile").rpc_payload())
    assert reply == {
        "action": "smile",
        "animation_triggered": False,
        "animation_debounced": True,
        "service": "avatar-farm",
        "status": "success",
        "reason": "debounced",
    }


async def test_threadsafe_deliver_runs_the_callback_on_the_loop_thread() -> None:
    loop = asyncio.get_running_loop()
    ran_on: list[threading.Thread] = []
    done = asyncio.Event()

    def on_loop(action: str) -> None:
        ran_on.append(threading.current_thread())
        done.set()

    deliver = threadsafe_deliver(loop, on_loop)
    thread = threading.Thread(target=deliver, args=("smile",))
    thread.start()
    await asyncio.wait_for(done.wait(), 5)
    thread.join()
    assert ran_on == [threading.current_thread()]


def test_the_rpc_and_the_topic_share_one_debounce() -> None:
    played = Played()
    local = registry_with(played, ("s1", "t", "A1"))
    local.handle(DynamicsMessage(tenant="t", action="smile", agent_id="A1"))
    reply = json.loads(handle_trigger_rpc(local.get("s1"), '{"action": "smile"}'))
    assert reply["animation_triggered"] is False and reply["reason"] == "debounced"
    gone = json.loads(handle_trigger_rpc(local.get("nope"), '{"action": "smile"}'))
    assert gone["animation_triggered"] is False and gone["reason"] == "session_closed"
    assert played.by_session == {"s1": ["smile"]}
