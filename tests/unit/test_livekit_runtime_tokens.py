"""POST /v1/runtime-tokens/request: what livekit-plugins-bithuman sends, answered like bitHuman does."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit import api

from farm.kernel import names
from farm.kernel.contracts import WorkerInfo
from farm.kernel.domain import AgentStatus, ModelKind, SessionState
from farm.tenancy.runtime_keys import RuntimeKeySigner, memory_signing_key
from tests.unit.api_support import ApiHarness, b64, png_bytes

pytestmark = pytest.mark.unit

URL = "/v1/runtime-tokens/request"
LK_URL = "wss://lk.example"  # the farm's configured LiveKit server: the default allow-list
LK_SECRET = "users-livekit-secret-the-farm-never-sees-0123456789"


@pytest.fixture
def api_h(tmp_path: Path) -> ApiHarness:
    harness = ApiHarness.build(tmp_path, livekit_url=LK_URL)
    harness.registry.publish(
        WorkerInfo(
            worker_id="w1", hostname="h", pid=1, queues=["essence", "expression"], state="READY", capacity=4
        ),
        ttl_s=60,
    )
    return harness


def plugin_token(room: str = "room-1", identity: str = "bithuman-avatar-agent", secret: str = "") -> str:
    """The avatar token the plugin mints (kind agent, publish_on_behalf, the api secret as an attribute)."""
    return (
        api.AccessToken("lk-key", LK_SECRET)
        .with_kind("agent")
        .with_identity(identity)
        .with_name(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .with_attributes({names.LK_ATTR_PUBLISH_ON_BEHALF: "agent-AJ_1", "api_secret": secret})
        .to_jwt()
    )


def json_body(harness: ApiHarness, **extra: object) -> dict[str, object]:
    agent = harness.agent()
    body: dict[str, object] = {
        "livekit_url": LK_URL,
        "livekit_token": plugin_token(),
        "room_name": "room-1",
        "mode": "cpu",
        "agent_id": agent.id,
    }
    body.update(extra)
    return body


def test_the_json_variant_queues_a_room_session_and_answers_at_once(api_h: ApiHarness) -> None:
    response = api_h.client.post(URL, json=json_body(api_h), headers=api_h.headers())

    assert response.status_code == 200, response.text
    body = response.json()
    session = api_h.store.get(body["session_id"])
    assert session.state is SessionState.QUEUED and session.model is ModelKind.ESSENCE
    assert session.livekit is not None
    assert (session.livekit.room, session.livekit.identity, session.livekit.agent_identity) == (
        "room-1",
        "bithuman-avatar-agent",
        "agent-AJ_1",
    )
    assert [getattr(m, "session_id", None) for m in api_h.queue.messages] == [session.id]


def test_retries_for_the_same_room_and_identity_return_the_same_session(api_h: ApiHarness) -> None:
    body = json_body(api_h)
    first = api_h.client.post(URL, json=body, headers=api_h.headers()).json()
    again = api_h.client.post(URL, json=body, headers=api_h.headers()).json()

    assert again["session_id"] == first["session_id"]
    assert (first["created"], again["created"]) == (True, False)
    assert len(api_h.queue.messages) == 1


def test_the_multipart_variant_with_a_bearer_token_routes_an_uploaded_face_to_expression(
    api_h: ApiHarness,
) -> None:
    form = {"livekit_url": LK_URL, "livekit_token": plugin_token(), "room_name": "room-1"}
    form["model"] = "expression"
    response = api_h.client.post(
        URL,
        data=form,
        files={"avatar_image": ("avatar.jpg", png_bytes(), "image/jpeg")},
        headers={"Authorization": f"Bearer {api_h.secret_a}"},
    )

    assert response.status_code == 200, response.text
    session = api_h.store.get(response.json()["session_id"])
    assert session.model is ModelKind.EXPRESSION and session.image_ref is not None


def test_the_urlencoded_form_the_plugin_sends_for_an_expression_agent_is_accepted(api_h: ApiHarness) -> None:
    agent = api_h.agent()
    form = {"livekit_url": LK_URL, "livekit_token": plugin_token(), "room_name": "room-1"}
    form.update({"model": "expression", "avatar_id": agent.id})  # no file: aiohttp urlencodes it
    response = api_h.client.post(URL, data=form, headers={"Authorization": f"Bearer {api_h.secret_a}"})

    assert response.status_code == 200, response.text
    session = api_h.store.get(response.json()["session_id"])
    assert session.model is ModelKind.EXPRESSION and session.avatar_id == agent.id


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"model": "essence", "mode": "gpu"}, ModelKind.ESSENCE),  # model wins over mode
        ({"mode": "gpu"}, ModelKind.EXPRESSION),
        ({"mode": None, "image": "IMAGE"}, ModelKind.EXPRESSION),  # an image means Expression
        ({"model": "essence", "image": "IMAGE"}, ModelKind.ESSENCE),  # unless the model says otherwise
    ],
)
def test_routing_follows_model_then_mode_then_image(
    api_h: ApiHarness, extra: dict[str, object], expected: ModelKind
) -> None:
    if extra.get("image") == "IMAGE":
        extra = {**extra, "image": b64(png_bytes()), "agent_id": None}
    response = api_h.client.post(URL, json=json_body(api_h, **extra), headers=api_h.headers())

    assert response.status_code == 200, response.text
    assert api_h.store.get(response.json()["session_id"]).model is expected


@pytest.mark.parametrize(
    ("model", "engine", "queue"),
    [
        ("essence", "essence", ModelKind.ESSENCE),
        ("essence-2", "essence", ModelKind.ESSENCE),
        ("expression", "expression", ModelKind.EXPRESSION),
    ],
)
def test_every_served_plugin_model_name_maps_to_its_engine_through_the_table(
    api_h: ApiHarness, model: str, engine: str, queue: ModelKind
) -> None:
    response = api_h.client.post(URL, json=json_body(api_h, model=model), headers=api_h.headers())

    assert response.status_code == 200, response.text
    session = api_h.store.get(response.json()["session_id"])
    assert (session.model, session.engine, session.model_name) == (queue, engine, model)


def test_a_refused_model_name_lists_the_names_this_farm_serves(api_h: ApiHarness) -> None:
    response = api_h.client.post(URL, json=json_body(api_h, model="expression-2"), headers=api_h.headers())

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "expression-2" in message and "essence, essence-2, expression" in message
    assert "FARM_EXPRESSION_WEIGHTS" in message


def test_the_secret_copied_into_token_attributes_is_not_a_credential(api_h: ApiHarness) -> None:
    body = json_body(api_h, livekit_token=plugin_token(secret=api_h.secret_a))

    response = api_h.client.post(URL, json=body)

    assert response.status_code == 401
    assert api_h.queue.messages == []


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        ({"livekit_token": "not-a-jwt"}, 400, "VALIDATION_ERROR"),
        ({"room_name": "another-room"}, 400, "VALIDATION_ERROR"),
        ({"model": "hologram"}, 400, "MODEL_NOT_CONFIGURED"),
        ({"model": "essence-3"}, 400, "MODEL_NOT_CONFIGURED"),  # never silently mapped to essence
        ({"model": "expression-2"}, 400, "MODEL_NOT_CONFIGURED"),  # no learned weights configured here
        ({"livekit_url": "ftp://x"}, 400, "VALIDATION_ERROR"),
        ({"agent_id": None}, 400, "VALIDATION_ERROR"),
        ({"image": "https://example.com/face.jpg", "mode": "gpu", "agent_id": None}, 400, "VALIDATION_ERROR"),
    ],
)
def test_bad_requests_are_4xx_and_queue_nothing(
    api_h: ApiHarness, extra: dict[str, object], status: int, code: str
) -> None:
    response = api_h.client.post(URL, json=json_body(api_h, **extra), headers=api_h.headers())

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert api_h.queue.messages == []


def test_an_agent_still_building_is_409(api_h: ApiHarness) -> None:
    building = api_h.agent(status=AgentStatus.PROCESSING)
    response = api_h.client.post(URL, json=json_body(api_h, agent_id=building.id), headers=api_h.headers())
    assert response.status_code == 409


def test_no_free_worker_slot_is_503_and_leaves_no_live_session(tmp_path: Path) -> None:
    harness = ApiHarness.build(tmp_path, livekit_url=LK_URL)  # no worker registered
    response = harness.client.post(URL, json=json_body(harness), headers=harness.headers())

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "NO_CAPACITY"
    assert harness.store.count_live("tenant-a") == 0
    assert harness.queue.messages == []


def test_a_room_session_for_an_avatar_a_ready_worker_holds_is_routed_warm_and_counted(
    api_h: ApiHarness,
) -> None:
    body = json_body(api_h)
    agent_id = str(body["agent_id"])
    api_h.registry.publish(
        WorkerInfo(
            worker_id="w2",
            hostname="h",
            pid=2,
            queues=["essence"],
            state="READY",
            capacity=2,
            cached_avatars=[agent_id],
            warm_queue="render.w.w2",
        ),
        ttl_s=60,
    )
    response = api_h.client.post(URL, json=body, headers=api_h.headers())

    assert response.status_code == 200, response.text
    assert [getattr(m, "worker_id", None) for m in api_h.queue.messages] == ["w2"]
    assert api_h.store.get(response.json()["session_id"]).routed_to == "w2"
    assert api_h.agents.most_used(1) == [agent_id]  # usage feeds the hot set workers preload


# ---------------------------------------------------------------- runtime keys (scoped, short-lived)
MINT = "/v1/runtime-tokens/mint"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def minted(api_h: ApiHarness, **body: object) -> str:
    response = api_h.client.post(MINT, json=body, headers=api_h.headers())
    assert response.status_code == 200, response.text
    key: str = response.json()["runtime_key"]
    return key


def test_a_minted_runtime_key_starts_room_sessions_for_the_minting_tenant(api_h: ApiHarness) -> None:
    key = minted(api_h, ttl_s=600)
    response = api_h.client.post(URL, json=json_body(api_h), headers={"api-secret": key})

    assert response.status_code == 200, response.text
    assert api_h.store.get(response.json()["session_id"]).tenant == "tenant-a"


def test_a_runtime_key_is_refused_everywhere_else_and_cannot_mint(api_h: ApiHarness) -> None:
    key = minted(api_h)
    for response in (
        api_h.client.get("/v1/agents", headers={"api-secret": key}),
        api_h.client.post(MINT, json={}, headers={"api-secret": key}),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "KEY_SCOPE"


def test_a_runtime_key_for_one_room_and_agent_refuses_others(api_h: ApiHarness) -> None:
    agent = api_h.agent()
    key = minted(api_h, room_name="room-1", agent_id=agent.id)
    other_room = json_body(api_h, room_name="room-2", agent_id=agent.id)
    other_room["livekit_token"] = plugin_token(room="room-2")
    other_agent = json_body(api_h)  # json_body makes a new agent

    for body in (other_room, other_agent):
        response = api_h.client.post(URL, json=body, headers={"api-secret": key})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "KEY_SCOPE"
    assert api_h.queue.messages == []
    ok = api_h.client.post(URL, json=json_body(api_h, agent_id=agent.id), headers={"api-secret": key})
    assert ok.status_code == 200, ok.text


def test_a_runtime_key_caps_its_own_concurrency(api_h: ApiHarness) -> None:
    key = minted(api_h, max_concurrency=1)
    first = json_body(api_h)
    second = json_body(api_h, room_name="room-2")
    second["livekit_token"] = plugin_token(room="room-2")

    assert api_h.client.post(URL, json=first, headers={"api-secret": key}).status_code == 200
    refused = api_h.client.post(URL, json=second, headers={"api-secret": key})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "CONCURRENCY_LIMIT_REACHED"


def test_an_expired_or_forged_runtime_key_is_401_with_its_reason(api_h: ApiHarness) -> None:
    clock = Clock()
    api_h.client.app.state.farm.runtime_keys = RuntimeKeySigner(memory_signing_key(), clock=clock)  # type: ignore[attr-defined]
    key = minted(api_h, ttl_s=60)
    clock.now += 61
    expired = api_h.client.post(URL, json=json_body(api_h), headers={"api-secret": key})
    forged = api_h.client.post(URL, json=json_body(api_h), headers={"api-secret": key[:-4] + "AAAA"})

    assert (expired.status_code, expired.json()["error"]["code"]) == (401, "KEY_EXPIRED")
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "UNAUTHORIZED")
    assert api_h.queue.messages == []


@pytest.mark.parametrize(
    "body", [{"ttl_s": 5}, {"ttl_s": 10**7}, {"agent_id": "nope"}, {"max_concurrency": 0}]
)
def test_mint_requests_out_of_range_are_400(api_h: ApiHarness, body: dict[str, object]) -> None:
    response = api_h.client.post(MINT, json=body, headers=api_h.headers())
    assert response.status_code in (400, 422)


@pytest.mark.parametrize(
    "url",
    [
        "wss://evil.example",
        "wss://lk.example.evil.net",  # a string prefix of the allowed URL is not the allowed host
        "wss://lk.example@evil.net",  # userinfo: the host is evil.net
        "wss://lk.example:8443",  # another port
        "ws://lk.example",  # plain text instead of TLS
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_a_livekit_url_off_the_allow_list_is_refused_and_queues_nothing(api_h: ApiHarness, url: str) -> None:
    response = api_h.client.post(URL, json=json_body(api_h, livekit_url=url), headers=api_h.headers())

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "LIVEKIT_URL_NOT_ALLOWED"
    assert LK_URL in error["message"] and "FARM_LIVEKIT_URL_ALLOWLIST" in error["message"]
    assert api_h.queue.messages == [] and api_h.stored_nothing()


def test_the_allow_list_setting_admits_its_hosts_and_urls_and_https_for_wss(tmp_path: Path) -> None:
    harness = ApiHarness.build(
        tmp_path, livekit_url=LK_URL, livekit_url_allowlist=["lk-2.example", "wss://cloud.example/project"]
    )
    harness.registry.publish(
        WorkerInfo(worker_id="w1", hostname="h", pid=1, queues=["essence"], state="READY", capacity=4),
        ttl_s=60,
    )

    def start(url: str, room: str) -> int:
        body = json_body(harness, livekit_url=url, room_name=room, livekit_token=plugin_token(room=room))
        return harness.client.post(URL, json=body, headers=harness.headers()).status_code

    assert start("ws://lk-2.example:7880", "r1") == 200  # a bare host: any scheme and port
    assert start("https://cloud.example/project/eu", "r2") == 200  # same security, a path under it
    assert start("wss://cloud.example/projectx", "r3") == 400  # not under /project/
    assert start(LK_URL, "r4") == 400  # the list replaces the default, it does not add to it


def test_a_farm_without_a_livekit_server_configured_refuses_every_livekit_url(tmp_path: Path) -> None:
    harness = ApiHarness.build(tmp_path)
    response = harness.client.post(URL, json=json_body(harness), headers=harness.headers())

    assert response.status_code == 400
    assert "FARM_LIVEKIT_URL" in response.json()["error"]["message"]
