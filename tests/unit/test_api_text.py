"""Text in over the API (in-memory stores, real espeak-ng): generate, video download, TTS, validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm import media
from farm.domain import AgentStatus, SessionState
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
