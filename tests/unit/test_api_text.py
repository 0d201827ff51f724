"""Text in over the API (in-memory stores, real espeak-ng): generate, video download, TTS, validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.infra import media
from farm.kernel.domain import AgentStatus, SessionState
from tests.unit.api_support import ApiHarness, b64, png_bytes, wav_bytes

pytestmark = pytest.mark.unit


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path)


def _seconds(wav: bytes) -> float:
    pcm, rate = media.decode_audio(wav, max_s=600)
    return len(pcm) / rate


def test_text_for_an_agent_becomes_a_queued_session_whose_audio_is_the_spoken_text(api: ApiHarness) -> None:
    agent = api.agent()
    r = api.client.post(
        "/v1/video/generate",
        json={"agent_id": agent.id, "text": "Hello, how are you?"},
        headers=api.headers(),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["reply_text"] == "Hello, how are you?"  # no chat model: spoken as given
    assert body["status"] == "QUEUED"
    assert body["video_url"].endswith(f"/v1/sessions/{body['session_id']}/video")
    session = api.store.get(body["session_id"])
    assert session.avatar_id == agent.id and session.audio_ref is not None
    spoken = api.blobs.path(session.audio_ref).read_bytes()
    assert _seconds(spoken) == pytest.approx(body["duration_s"], abs=0.01)
    assert 0.8 < body["duration_s"] < 3.0
    assert [m.session_id for m in api.queue.messages] == [session.id]


def test_an_image_and_audio_need_no_agent_and_no_speech(api: ApiHarness) -> None:
    r = api.client.post(
        "/v1/video/generate",
        json={"image": b64(png_bytes()), "audio": b64(wav_bytes(1.5)), "model": "expression"},
        headers=api.headers(),
    )
    assert r.status_code == 201, r.text
    assert r.json()["reply_text"] is None
    assert r.json()["duration_s"] == pytest.approx(1.5, abs=0.01)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "hi"}, 400, "VALIDATION_ERROR"),  # no avatar
        ({"agent_id": "A78WKV4515", "image": "aGk=", "text": "hi"}, 400, "VALIDATION_ERROR"),  # two avatars
        ({"image": "PLACEHOLDER"}, 400, "VALIDATION_ERROR"),  # neither text nor audio
        ({"image": "PLACEHOLDER", "text": "   "}, 400, "VALIDATION_ERROR"),
        ({"image": "PLACEHOLDER", "text": "x" * 5001}, 400, "VALIDATION_ERROR"),
        ({"agent_id": "A78WKV4515", "text": "hi"}, 404, "NOT_FOUND"),
        ({"image": "PLACEHOLDER", "text": "hi", "voice": "no-such-voice"}, 400, "VALIDATION_ERROR"),
        ({"image": "PLACEHOLDER", "text": "hi", "extra": 1}, 400, "VALIDATION_ERROR"),
    ],
)
def test_bad_generate_requests_are_refused_and_store_nothing(
    api: ApiHarness, body: dict[str, object], status: int, code: str
) -> None:
    body = {k: (b64(png_bytes()) if v == "PLACEHOLDER" else v) for k, v in body.items()}
    r = api.client.post("/v1/video/generate", json=body, headers=api.headers())
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert api.stored_nothing()


def test_an_agent_not_ready_is_refused_before_any_speech(api: ApiHarness) -> None:
    agent = api.agent(status=AgentStatus.PROCESSING)
    r = api.client.post(
        "/v1/video/generate", json={"agent_id": agent.id, "text": "hi"}, headers=api.headers()
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "AGENT_NOT_READY")
    assert api.stored_nothing()


def test_speech_longer_than_the_output_limit_is_refused(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path, max_video_s=1.0)
    r = api.client.post(
        "/v1/video/generate",
        json={"image": b64(png_bytes()), "text": "This sentence takes well over one second to say aloud."},
        headers=api.headers(),
    )
    assert (r.status_code, r.json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert "1 s limit" in r.json()["error"]["message"]
    assert api.stored_nothing()


def test_an_idempotency_key_replays_the_first_response_without_a_second_render(api: ApiHarness) -> None:
    body = {"image": b64(png_bytes()), "text": "Once only."}
    headers = {**api.headers(), "Idempotency-Key": "k-1"}
    first = api.client.post("/v1/video/generate", json=body, headers=headers)
    again = api.client.post("/v1/video/generate", json=body, headers=headers)
    other_tenant = api.client.post(
        "/v1/video/generate", json=body, headers={**api.headers(api.secret_b), "Idempotency-Key": "k-1"}
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotency-Replayed"] == "true"
    assert "Idempotency-Replayed" not in first.headers
    assert other_tenant.json()["session_id"] != first.json()["session_id"]
    assert len(api.queue.messages) == 2


def test_the_video_is_served_once_the_session_has_ended(api: ApiHarness, tmp_path: Path) -> None:
    r = api.client.post(
        "/v1/video/generate", json={"image": b64(png_bytes()), "text": "Hi."}, headers=api.headers()
    )
    sid = r.json()["session_id"]
    early = api.client.get(f"/v1/sessions/{sid}/video", headers=api.headers())
    assert (early.status_code, early.json()["error"]["code"]) == (409, "CONFLICT")
    mp4 = tmp_path / "out.mp4"
    mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    for state in (SessionState.ASSIGNED, SessionState.STARTING, SessionState.STREAMING, SessionState.ENDING):
        api.store.transition(sid, state)
    api.store.transition(sid, SessionState.ENDED, output=str(mp4))
    done = api.client.get(f"/v1/sessions/{sid}/video", headers=api.headers())
    assert done.status_code == 200
    assert done.headers["content-type"] == "video/mp4"
    assert done.content == mp4.read_bytes()
    assert api.client.get(f"/v1/sessions/{sid}/video", headers=api.headers(api.secret_b)).status_code == 404


def test_tts_returns_a_wav_of_the_text(api: ApiHarness) -> None:
    r = api.client.post("/v1/tts", json={"text": "Hello there."}, headers=api.headers())
    assert r.status_code == 200
    assert r.headers["content-type"] == "audio/wav"
    assert 0.5 < _seconds(r.content) < 3.0
    unauthenticated = api.client.post("/v1/tts", json={"text": "Hello there."})
    assert unauthenticated.status_code == 401


def test_validate_says_whether_the_secret_is_valid_and_always_answers_200(api: ApiHarness) -> None:
    assert api.client.post("/v1/validate", headers=api.headers()).json() == {"valid": True}
    wrong = api.client.post("/v1/validate", headers={"api-secret": "farm_nope"})
    assert (wrong.status_code, wrong.json()) == (200, {"valid": False})
    assert api.client.post("/v1/validate").json() == {"valid": False}


# ---------------------------------------------------------------- agents: prompt, voice, delete, speak
def test_agents_take_a_system_prompt_and_voice_at_creation_and_update(api: ApiHarness) -> None:
    created = api.client.post(
        "/v1/agents",
        json={"image": b64(png_bytes()), "system_prompt": "You are Ada.", "voice": "en-us"},
        headers=api.headers(),
    )
    code = created.json()["agent_id"]
    data = api.client.get(f"/v1/agents/{code}", headers=api.headers()).json()["data"]
    assert (data["system_prompt"], data["voice"]) == ("You are Ada.", "en-us")
    updated = api.client.post(
        f"/v1/agent/{code}", json={"system_prompt": "You are Bo."}, headers=api.headers()
    )
    assert updated.json()["data"]["system_prompt"] == "You are Bo."
    assert updated.json()["data"]["voice"] == "en-us"  # untouched
    cleared = api.client.patch(f"/v1/agents/{code}", json={"voice": None}, headers=api.headers())
    assert cleared.json()["data"]["voice"] is None
    bad = api.client.patch(f"/v1/agents/{code}", json={"voice": "no-such-voice"}, headers=api.headers())
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
    empty = api.client.patch(f"/v1/agents/{code}", json={}, headers=api.headers())
    assert empty.status_code == 400
    foreign = api.client.patch(f"/v1/agents/{code}", json={"voice": "en"}, headers=api.headers(api.secret_b))
    assert foreign.status_code == 404


def test_the_agents_voice_is_used_for_its_speech(api: ApiHarness) -> None:
    agent = api.agent()
    text = "Hallo, wie geht es dir heute?"
    english = api.client.post(
        "/v1/video/generate", json={"agent_id": agent.id, "text": text}, headers=api.headers()
    )
    api.agents.update(agent.id, agent.status, voice="de")
    german = api.client.post(
        "/v1/video/generate", json={"agent_id": agent.id, "text": text}, headers=api.headers()
    )
    assert english.json()["duration_s"] != german.json()["duration_s"]


def _live_room_session(api: ApiHarness, agent_id: str, room: str) -> str:
    from farm.kernel.domain import Session

    session = Session(
        id=f"s-{room}",
        tenant="tenant-a",
        model="essence",
        avatar_id=agent_id,
        livekit={"room": room, "url": "ws://x"},
    )
    api.store.create(session, max_live=10)
    for state in (SessionState.ASSIGNED, SessionState.STARTING, SessionState.STREAMING):
        api.store.transition(session.id, state)
    return session.id


def test_an_agent_with_live_sessions_cannot_be_deleted_and_one_without_can(api: ApiHarness) -> None:
    agent = api.agent()
    sid = _live_room_session(api, agent.id, "room-1")
    refused = api.client.delete(f"/v1/agents/{agent.id}", headers=api.headers())
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "CONFLICT")
    api.store.transition(sid, SessionState.ENDING)
    api.store.transition(sid, SessionState.ENDED)
    assert api.client.delete(f"/v1/agents/{agent.id}", headers=api.headers(api.secret_b)).status_code == 404
    deleted = api.client.delete(f"/v1/agent/{agent.id}", headers=api.headers())
    assert deleted.json() == {"success": True, "message": "Agent deleted", "agent_id": agent.id}
    assert api.client.get(f"/v1/agents/{agent.id}", headers=api.headers()).status_code == 404


def test_speak_without_a_live_room_is_404_and_with_one_publishes_the_speech(api: ApiHarness) -> None:
    from farm.infra.speak import MemorySpeakBus, decode_speech

    agent = api.agent()
    none = api.client.post(f"/v1/agent/{agent.id}/speak", json={"message": "Hi"}, headers=api.headers())
    assert (none.status_code, none.json()["error"]["code"]) == (404, "NOT_FOUND")
    assert "No active rooms" in none.json()["error"]["message"]
    sid = _live_room_session(api, agent.id, "room-7")
    said = api.client.post(
        f"/v1/agent/{agent.id}/speak", json={"message": "Hello room"}, headers=api.headers()
    )
    assert said.status_code == 200, said.text
    assert said.json()["delivered_to_rooms"] == ["room-7"]
    bus = api.client.app.state.farm.speak_bus  # type: ignore[attr-defined]
    assert isinstance(bus, MemorySpeakBus)
    (message,) = bus.published
    assert (message.session_id, message.text, message.agent_id) == (sid, "Hello room", agent.id)
    pcm, rate = decode_speech(message)
    assert len(pcm) / rate > 0.3
    elsewhere = api.client.post(
        f"/v1/agent/{agent.id}/speak", json={"message": "Hi", "room_id": "other"}, headers=api.headers()
    )
    assert elsewhere.status_code == 404


def test_with_a_chat_model_the_avatar_answers_with_the_agents_prompt(tmp_path: Path) -> None:
    from tests.support.openai_server import SECONDS_PER_CHAR, openai_server

    with openai_server() as server:
        api = ApiHarness.build(tmp_path, chat_url=server.url, tts_url=server.url)
        agent = api.agent()
        api.agents.update(agent.id, agent.status, system_prompt="You are Ada.", voice="shimmer")
        r = api.client.post(
            "/v1/video/generate", json={"agent_id": agent.id, "text": "Hi!"}, headers=api.headers()
        )
        paths = [(path, body) for path, body, _ in server.requests]
    reply = "You are Ada. | you said: Hi!"
    assert r.json()["reply_text"] == reply
    assert r.json()["duration_s"] == pytest.approx(len(reply) * SECONDS_PER_CHAR, abs=0.01)
    assert [p for p, _ in paths] == ["/v1/chat/completions", "/v1/audio/speech"]
    assert paths[1][1]["voice"] == "shimmer"


def test_an_agent_registration_with_an_idempotency_key_builds_and_charges_once(api: ApiHarness) -> None:
    headers = {**api.headers(), "Idempotency-Key": "agent-1"}
    first = api.client.post("/v1/agents", json={"image": b64(png_bytes())}, headers=headers)
    again = api.client.post("/v1/agents", json={"image": b64(png_bytes())}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["Idempotency-Replayed"] == "true"
    assert len(api.builds.messages) == 1 and len(api.agents.list_for_tenant("tenant-a")) == 1


def test_a_speech_backend_answering_garbage_is_speech_unavailable_not_the_users_fault(tmp_path: Path) -> None:
    from tests.support.openai_server import openai_server

    with openai_server() as server:
        server.garbage_audio = True
        api = ApiHarness.build(tmp_path, tts_url=server.url)
        r = api.client.post(
            "/v1/video/generate", json={"image": b64(png_bytes()), "text": "Hi"}, headers=api.headers()
        )
    assert (r.status_code, r.json()["error"]["code"]) == (503, "SPEECH_UNAVAILABLE")
    assert r.headers["Retry-After"] == "1"
    assert api.stored_nothing()
