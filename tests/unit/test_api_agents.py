"""POST/GET /v1/agents against in-memory stores: registration submits a build; tenants are isolated."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.kernel.contracts import BuildAgentMessage
from farm.kernel.domain import AgentStatus
from farm.sessions.agents import is_agent_id
from tests.unit.api_support import ApiHarness, b64, png_bytes

pytestmark = pytest.mark.unit


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path)


def test_registering_a_portrait_stores_it_and_submits_a_build(api: ApiHarness) -> None:
    response = api.client.post("/v1/agents", json={"image": b64(png_bytes())}, headers=api.headers())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    assert body["status"] == "processing"
    assert is_agent_id(body["agent_id"])
    agent = api.agents.get(body["agent_id"])
    assert agent.tenant == "tenant-a"
    assert api.blobs.get(agent.image_ref) == png_bytes()
    assert [(type(m), m.agent_id) for m in api.builds.messages] == [(BuildAgentMessage, agent.id)]
    assert api.queue.messages == []


def test_a_multipart_upload_registers_an_agent(api: ApiHarness) -> None:
    files = {"image": ("me.png", png_bytes(), "image/png")}
    response = api.client.post("/v1/agents", files=files, headers=api.headers())
    assert response.status_code == 201, response.text
    assert len(api.builds.messages) == 1


def test_an_agent_reports_its_build_state_to_its_owner_only(api: ApiHarness) -> None:
    agent_id = api.client.post("/v1/agents", json={"image": b64(png_bytes())}, headers=api.headers()).json()[
        "agent_id"
    ]
    processing = api.client.get(f"/v1/agents/{agent_id}", headers=api.headers()).json()
    assert processing["success"] is True
    assert processing["data"]["status"] == "processing"
    api.agents.update(agent_id, AgentStatus.READY, gestures=["mini_wave_hello"])
    ready = api.client.get(f"/v1/agent/status/{agent_id}", headers=api.headers()).json()["data"]
    assert (ready["status"], ready["progress"], ready["gestures"]) == ("ready", 1.0, ["mini_wave_hello"])
    foreign = api.client.get(f"/v1/agents/{agent_id}", headers=api.headers(api.secret_b))
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "NOT_FOUND"


def test_a_malformed_agent_code_is_a_validation_error(api: ApiHarness) -> None:
    response = api.client.get("/v1/agents/not-a-code", headers=api.headers())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"image": b64(b"GIF89a-but-not-really")}, 400, "INVALID_IMAGE"),
        ({"image": "%%%"}, 400, "VALIDATION_ERROR"),
        ({}, 400, "VALIDATION_ERROR"),
        ({"image": b64(png_bytes()), "extra": 1}, 400, "VALIDATION_ERROR"),
    ],
)
def test_a_bad_portrait_registers_nothing(
    api: ApiHarness, body: dict[str, object], status: int, code: str
) -> None:
    response = api.client.post("/v1/agents", json=body, headers=api.headers())
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert api.agents.list_for_tenant("tenant-a") == []
    assert api.builds.messages == []


def test_a_failed_build_submit_marks_the_agent_failed(api: ApiHarness) -> None:
    api.builds.fail = True
    response = api.client.post("/v1/agents", json={"image": b64(png_bytes())}, headers=api.headers())
    assert response.status_code == 503
    (agent,) = api.agents.list_for_tenant("tenant-a")
    assert agent.status is AgentStatus.FAILED
    assert agent.error_message


def test_registering_needs_an_api_secret(api: ApiHarness) -> None:
    response = api.client.post("/v1/agents", json={"image": b64(png_bytes())})
    assert response.status_code == 401
    assert api.agents.list_for_tenant("tenant-a") == [] and api.builds.messages == []


def test_listing_agents_pages_newest_first_filters_by_status_and_shows_only_your_own(api: ApiHarness) -> None:
    first, second = api.agent(), api.agent()
    building = api.agent(status=AgentStatus.PROCESSING)
    api.agent(tenant="tenant-b")

    page = api.client.get("/v1/agents?limit=2", headers=api.headers()).json()
    rest = api.client.get("/v1/agents?limit=2&offset=2", headers=api.headers()).json()
    ready = api.client.get("/v1/agents?status=ready", headers=api.headers()).json()

    assert [a["agent_id"] for a in page["data"] + rest["data"]] == [building.id, second.id, first.id]
    assert page["pagination"] == {"limit": 2, "offset": 0, "total": 3, "has_more": True}
    assert rest["pagination"]["has_more"] is False
    assert {a["agent_id"] for a in ready["data"]} == {first.id, second.id}
    too_many = api.client.get("/v1/agents?limit=101", headers=api.headers())
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "VALIDATION_ERROR"


# ----------------------------------------------------------------------------- modes and framing
CAT = {"mode": "animal", "mouth_box": [20, 40, 44, 52], "eyes": [[18, 20], [46, 20]]}


def test_an_animal_agent_stores_its_mouth_and_eyes_for_the_build(api: ApiHarness) -> None:
    response = api.client.post("/v1/agents", json={"image": b64(png_bytes()), **CAT}, headers=api.headers())
    assert response.status_code == 201, response.text
    agent = api.agents.get(response.json()["agent_id"])
    assert agent.build.mode == "animal"
    assert agent.build.mouth_box == [20, 40, 44, 52]
    assert agent.build.eyes == [[18, 20], [46, 20]]
    view = api.client.get(f"/v1/agents/{agent.id}", headers=api.headers()).json()["data"]
    assert (view["mode"], view["framing"]) == ("animal", "face")


def test_a_multipart_animal_agent_takes_its_points_as_json_fields(api: ApiHarness) -> None:
    files = {"image": ("cat.png", png_bytes(), "image/png")}
    form = {"mode": "animal", "framing": "full", "mouth_points": "[[20, 46], [32, 40], [44, 46], [32, 52]]"}
    response = api.client.post("/v1/agents", files=files, data=form, headers=api.headers())
    assert response.status_code == 201, response.text
    agent = api.agents.get(response.json()["agent_id"])
    assert (agent.build.mode, agent.build.framing) == ("animal", "full")
    assert agent.build.mouth() == (20, 40, 44, 52)


def test_a_full_body_agent_keeps_its_framing_choice(api: ApiHarness) -> None:
    body = {"image": b64(png_bytes()), "framing": "face", "crop_scale": 6.0, "size": 384}
    response = api.client.post("/v1/agents", json=body, headers=api.headers())
    assert response.status_code == 201, response.text
    build = api.agents.get(response.json()["agent_id"]).build
    assert (build.framing, build.crop_scale, build.size) == ("face", 6.0, 384)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"mode": "animal"}, "POINTS_REQUIRED"),
        ({"mode": "animal", "mouth_box": [20, 40, 80, 52]}, "POINTS_OUTSIDE_IMAGE"),
        ({"mode": "animal", "mouth_box": [20, 40, 44, 52], "eyes": [[70, 10]]}, "POINTS_OUTSIDE_IMAGE"),
        ({"mode": "animal", "mouth_box": [20, 40, 24, 42]}, "MOUTH_TOO_SMALL"),
        ({"mode": "animal", "mouth_box": [20, 40, 44]}, "VALIDATION_ERROR"),
        ({"mouth_box": [20, 40, 44, 52]}, "VALIDATION_ERROR"),
        ({"mode": "dog"}, "VALIDATION_ERROR"),
        ({**CAT, "model": "expression"}, "MODE_NOT_SUPPORTED"),
    ],
)
def test_animal_inputs_that_cannot_work_register_nothing(
    api: ApiHarness, fields: dict[str, object], code: str
) -> None:
    response = api.client.post(
        "/v1/agents", json={"image": b64(png_bytes()), **fields}, headers=api.headers()
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert api.agents.list_for_tenant("tenant-a") == []
    assert api.builds.messages == []


def test_multipart_points_that_are_not_json_are_refused(api: ApiHarness) -> None:
    files = {"image": ("cat.png", png_bytes(), "image/png")}
    response = api.client.post(
        "/v1/agents", files=files, data={"mode": "animal", "mouth_box": "twenty"}, headers=api.headers()
    )
    assert response.status_code == 400
    assert "mouth_box" in response.json()["error"]["message"]
    assert api.builds.messages == []


def test_expression_sessions_refuse_an_animal_agent(api: ApiHarness) -> None:
    response = api.client.post("/v1/agents", json={"image": b64(png_bytes()), **CAT}, headers=api.headers())
    agent_id = response.json()["agent_id"]
    api.agents.update(agent_id, AgentStatus.READY)
    body = api.session_body(avatar_id=agent_id, model="expression")
    refused = api.client.post("/v1/sessions", json=body, headers=api.headers())
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "MODE_NOT_SUPPORTED"
    assert api.queue.messages == [] and api.store.list_for_tenant("tenant-a") == []
