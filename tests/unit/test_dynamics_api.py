"""``/v1/dynamics`` and ``/v1/sessions/{id}/dynamics`` over in-memory stores and an in-memory bus."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from httpx import Response

from farm.api.routes.dynamics import DynamicsServices, install_dynamics
from farm.dynamics.catalogue import EXPRESSION_GESTURES, preview_path
from farm.dynamics.memory import MemoryDynamicsBus
from farm.dynamics.router import LocalSessions
from farm.dynamics.rules import MAX_BODY_BYTES, MemoryRulesStore
from farm.kernel.domain import Agent, AgentStatus, ModelKind, Session, SessionState
from farm.sessions.agents import new_agent_id
from tests.unit.api_support import ApiHarness

pytestmark = pytest.mark.unit

GESTURES = ["mini_wave_hello", "smile", "talk_head_nod_subtle"]


class DynamicsHarness:
    def __init__(self, tmp_path: Path) -> None:
        self.api = ApiHarness.build(tmp_path)
        self.bus, self.rules = MemoryDynamicsBus(), MemoryRulesStore()
        install_dynamics(self.api.client.app, DynamicsServices(bus=self.bus, rules=self.rules))  # type: ignore[arg-type]
        self.client = self.api.client
        self.played: list[tuple[str, str]] = []

    def agent(self, gestures: list[str], tenant: str = "tenant-a") -> Agent:
        ref = "sha256/" + "0" * 64 + ".png"
        agent = Agent(
            id=new_agent_id(), tenant=tenant, status=AgentStatus.READY, image_ref=ref, gestures=gestures
        )
        return self.api.agents.create(agent)

    def worker(self, worker_id: str, *sessions: tuple[str, Agent]) -> LocalSessions:
        local = LocalSessions(worker_id)
        for session_id, agent in sessions:
            local.register(session_id, agent.tenant, agent.id, agent.gestures, self._deliver(session_id))
        self.bus.start(local.handle)
        return local

    def live_session(self, agent: Agent | None, model: ModelKind = ModelKind.ESSENCE) -> Session:
        session = Session(
            id=uuid.uuid4().hex, tenant="tenant-a", model=model, avatar_id=agent.id if agent else None
        )
        created, _ = self.api.store.create(session)
        return created

    def post(self, path: str, action: str, secret: str | None = None) -> Response:
        return self.client.post(path, json={"action": action}, headers=self.api.headers(secret))

    def _deliver(self, session_id: str) -> Callable[[str], None]:
        return lambda action: self.played.append((session_id, action))


@pytest.fixture
def h(tmp_path: Path) -> DynamicsHarness:
    return DynamicsHarness(tmp_path)


def test_the_catalogue_has_the_reference_shape_with_preview_urls(h: DynamicsHarness) -> None:
    agent = h.agent(GESTURES)
    body = h.client.get(f"/v1/dynamics/{agent.id}", headers=h.api.headers()).json()
    assert body["success"] is True
    data = body["data"]
    assert data["agent_id"] == agent.id and data["status"] == "ready" and data["url"]
    assert set(data["gestures"]) == set(GESTURES)
    assert data["gestures"]["smile"].endswith(f"/v1/dynamics/{agent.id}/previews/smile.mp4")


def test_an_agent_without_gestures_answers_the_no_dynamics_shape(h: DynamicsHarness) -> None:
    agent = h.agent([])
    response = h.client.get(f"/v1/dynamics/{agent.id}", headers=h.api.headers())
    assert response.status_code == 200
    assert response.json()["data"] == {"url": None, "status": "ready", "agent_id": agent.id, "gestures": {}}


def test_unknown_and_foreign_agents_are_404(h: DynamicsHarness) -> None:
    foreign = h.agent(GESTURES, tenant="tenant-b")
    for path in (f"/v1/dynamics/{foreign.id}", "/v1/dynamics/A000000000", f"/v1/dynamics/{foreign.id}/rules"):
        assert h.client.get(path, headers=h.api.headers()).status_code == 404
    response = h.client.post(
        f"/v1/dynamics/{foreign.id}/trigger", json={"action": "smile"}, headers=h.api.headers()
    )
    assert response.status_code == 404
    assert h.bus.published == []


def test_a_preview_is_served_once_the_build_wrote_it(h: DynamicsHarness) -> None:
    agent = h.agent(GESTURES)
    url = f"/v1/dynamics/{agent.id}/previews/smile.mp4"
    assert h.client.get(url, headers=h.api.headers()).status_code == 404
    path = preview_path(h.api.settings.data_dir, agent.id, "smile")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    response = h.client.get(url, headers=h.api.headers())
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    assert (
        h.client.get(f"/v1/dynamics/{agent.id}/previews/backflip.mp4", headers=h.api.headers()).status_code
        == 404
    )


def test_an_agent_trigger_reaches_its_sessions_on_every_worker_and_counts_them(h: DynamicsHarness) -> None:
    agent, other = h.agent(GESTURES), h.agent(GESTURES)
    h.worker("w1", ("s1", agent), ("s2", other))
    h.worker("w2", ("s3", agent))
    response = h.client.post(
        f"/v1/dynamics/{agent.id}/trigger", json={"action": "smile"}, headers=h.api.headers()
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["sessions_accepted"], data["workers_reached"], data["count_complete"]) == (2, 2, True)
    assert sorted(h.played) == [("s1", "smile"), ("s3", "smile")]
    message = h.bus.published[0]
    assert (message.tenant, message.agent_id, message.action) == ("tenant-a", agent.id, "smile")


def test_an_unknown_gesture_is_400_with_the_valid_names(h: DynamicsHarness) -> None:
    agent = h.agent(GESTURES)
    response = h.client.post(
        f"/v1/dynamics/{agent.id}/trigger", json={"action": "backflip"}, headers=h.api.headers()
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "UNKNOWN_GESTURE"
    assert "mini_wave_hello, smile, talk_head_nod_subtle" in error["message"]
    assert h.bus.published == []


def test_a_session_trigger_reaches_that_session_and_reports_debounce(h: DynamicsHarness) -> None:
    agent = h.agent(GESTURES)
    session, twin = h.live_session(agent), h.live_session(agent)
    h.worker("w1", (session.id, agent), (twin.id, agent))
    url = f"/v1/sessions/{session.id}/dynamics"
    first = h.client.post(url, json={"action": "mini_wave_hello"}, headers=h.api.headers()).json()["data"]
    second = h.client.post(url, json={"action": "mini_wave_hello"}, headers=h.api.headers()).json()["data"]
    assert first["animation_triggered"] is True and first["sessions_accepted"] == 1
    assert second["animation_triggered"] is False and second["reason"] == "debounced"
    assert h.played == [(session.id, "mini_wave_hello")]


def test_an_expression_session_offers_the_motion_program_gestures(h: DynamicsHarness) -> None:
    session = h.live_session(None, ModelKind.EXPRESSION)
    url = f"/v1/sessions/{session.id}/dynamics"
    assert h.client.post(url, json={"action": "head_tilt"}, headers=h.api.headers()).status_code == 200
    assert h.client.post(url, json={"action": "backflip"}, headers=h.api.headers()).status_code == 400


def test_the_api_knows_the_expression_engines_gestures() -> None:
    from farm.render.expression.motion import GESTURES as ENGINE_GESTURES

    assert set(EXPRESSION_GESTURES) == set(ENGINE_GESTURES)


def test_a_session_trigger_for_an_ended_or_foreign_session_is_refused(h: DynamicsHarness) -> None:
    agent = h.agent(GESTURES)
    session = h.live_session(agent)
    h.api.store.transition(session.id, SessionState.ENDED)
    url = f"/v1/sessions/{session.id}/dynamics"
    assert h.client.post(url, json={"action": "smile"}, headers=h.api.headers()).status_code == 409
    live = h.live_session(agent)
    other = h.client.post(
        f"/v1/sessions/{live.id}/dynamics", json={"action": "smile"}, headers=h.api.headers(h.api.secret_b)
    )
    assert other.status_code == 404


def test_rules_round_trip_in_both_body_forms(h: DynamicsHarness) -> None:
    agent = h.agent(GESTURES)
    url = f"/v1/dynamics/{agent.id}/rules"
    bare = h.client.put(url, json={"Hello There": "mini_wave_hello"}, headers=h.api.headers())
    assert bare.status_code == 200 and bare.json()["data"]["rules"] == {"hello there": "mini_wave_hello"}
    full = {"rules": {"thanks": "smile"}, "cooldowns_s": {"smile": 4.0}}
    assert h.client.put(url, json=full, headers=h.api.headers()).status_code == 200
    data = h.client.get(url, headers=h.api.headers()).json()["data"]
    assert data == {"agent_id": agent.id, "rules": {"thanks": "smile"}, "cooldowns_s": {"smile": 4.0}}


def test_empty_huge_or_malformed_rule_sets_are_refused(h: DynamicsHarness) -> None:
    agent = h.agent(GESTURES)
    url = f"/v1/dynamics/{agent.id}/rules"
    headers = {**h.api.headers(), "content-type": "application/json"}
    assert h.client.put(url, json={}, headers=h.api.headers()).status_code == 400
    assert h.client.put(url, json={"rules": {}}, headers=h.api.headers()).status_code == 400
    assert h.client.put(url, content=b"{not json", headers=headers).status_code == 400
    assert h.client.put(url, json={"hi": "backflip"}, headers=h.api.headers()).status_code == 400
    many = {f"word{i}": "smile" for i in range(101)}
    assert h.client.put(url, json=many, headers=h.api.headers()).status_code == 413
    huge = b'{"' + b"a" * MAX_BODY_BYTES + b'": "smile"}'
    assert h.client.put(url, content=huge, headers=headers).status_code == 413
    assert h.rules.get(agent.id).rules == {}
