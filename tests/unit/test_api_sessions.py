"""POST/GET/DELETE /v1/sessions against in-memory stores: the happy paths and every bad input.

Each bad input must give a clear error (status and stable code) and leave nothing behind: no
session stored, nothing enqueued, no blob written.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from farm.kernel.contracts import RunSessionMessage, WorkerInfo
from farm.kernel.domain import AgentStatus, ModelKind, SessionState
from tests.unit.api_support import ApiHarness, b64, png_bytes, wav_bytes

pytestmark = pytest.mark.unit


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path)


def _bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A tiny PNG whose header claims width×height pixels (a decompression bomb)."""
    raw = zlib.compress(b"\x00" * (width // 8 + 1) * 16)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["status_code"] == status
    assert body["error"]["code"] == code
    assert body["error"]["httpStatus"] == status
    assert body["error"]["message"]


# ------------------------------------------------------------------ happy paths
def test_a_json_session_is_stored_queued_and_submitted_on_its_model_queue(api: ApiHarness) -> None:
    agent = api.agent()
    response = api.client.post(
        "/v1/sessions", json=api.session_body(avatar_id=agent.id), headers=api.headers()
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "QUEUED"
    assert body["status_url"].endswith(f"/v1/sessions/{body['session_id']}")
    session = api.store.get(body["session_id"])
    assert session.tenant == "tenant-a"
    assert session.model is ModelKind.ESSENCE
    assert session.avatar_id == agent.id
    assert session.audio_ref is not None and api.blobs.exists(session.audio_ref)
    assert [(m.session_id, m.model) for m in api.queue.messages] == [(session.id, ModelKind.ESSENCE)]
    assert api.agents.most_used(1) == [agent.id]


def test_an_expression_session_with_an_uploaded_face_is_submitted_as_expression(api: ApiHarness) -> None:
    files = {
        "audio": ("speech.wav", wav_bytes(), "audio/wav"),
        "avatar_image": ("face.png", png_bytes(), "image/png"),
    }
    response = api.client.post(
        "/v1/sessions", files=files, data={"model": "expression"}, headers=api.headers()
    )
    assert response.status_code == 201, response.text
    session = api.store.get(response.json()["session_id"])
    assert session.model is ModelKind.EXPRESSION
    assert session.image_ref is not None and api.blobs.get(session.image_ref) == png_bytes()
    assert session.audio_ref is not None and session.audio_ref.endswith(".wav")
    assert [m.model for m in api.queue.messages] == [ModelKind.EXPRESSION]


def test_the_status_url_returns_the_session_to_its_owner(api: ApiHarness) -> None:
    created = api.client.post(
        "/v1/sessions", json=api.session_body(avatar_image=b64(png_bytes())), headers=api.headers()
    ).json()
    response = api.client.get(created["status_url"], headers=api.headers())
    assert response.status_code == 200
    assert response.json()["session_id"] == created["session_id"]
    assert [h["state"] for h in response.json()["history"]] == ["QUEUED"]


def test_a_tenant_lists_only_its_own_sessions(api: ApiHarness) -> None:
    body = api.session_body(avatar_image=b64(png_bytes()))
    mine = {
        api.client.post("/v1/sessions", json=body, headers=api.headers()).json()["session_id"]
        for _ in range(2)
    }
    api.client.post("/v1/sessions", json=body, headers=api.headers(api.secret_b))
    listed = api.client.get("/v1/sessions", headers=api.headers()).json()
    assert {s["session_id"] for s in listed["data"]} == mine
    page = api.client.get("/v1/sessions?limit=1&offset=1", headers=api.headers()).json()
    assert len(page["data"]) == 1


def test_another_tenants_session_is_not_found_to_read_or_stop(api: ApiHarness) -> None:
    sid = api.client.post(
        "/v1/sessions", json=api.session_body(avatar_image=b64(png_bytes())), headers=api.headers()
    ).json()["session_id"]
    _assert_error(api.client.get(f"/v1/sessions/{sid}", headers=api.headers(api.secret_b)), 404, "NOT_FOUND")
    _assert_error(
        api.client.delete(f"/v1/sessions/{sid}", headers=api.headers(api.secret_b)), 404, "NOT_FOUND"
    )
    assert api.store.get(sid).state is SessionState.QUEUED


def test_stopping_a_queued_session_ends_it_and_stopping_it_again_conflicts(api: ApiHarness) -> None:
    sid = api.client.post(
        "/v1/sessions", json=api.session_body(avatar_image=b64(png_bytes())), headers=api.headers()
    ).json()["session_id"]
    stopped = api.client.delete(f"/v1/sessions/{sid}", headers=api.headers())
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "ENDED"
    _assert_error(api.client.delete(f"/v1/sessions/{sid}", headers=api.headers()), 409, "CONFLICT")


def test_stopping_a_running_session_flags_it_for_its_worker(api: ApiHarness) -> None:
    sid = api.client.post(
        "/v1/sessions", json=api.session_body(avatar_image=b64(png_bytes())), headers=api.headers()
    ).json()["session_id"]
    assert api.store.claim(sid, "worker-1", 30.0) is not None
    response = api.client.delete(f"/v1/sessions/{sid}", headers=api.headers())
    assert response.status_code == 200
    assert response.json()["status"] == "ASSIGNED"
    assert api.store.stop_requested(sid)


def test_a_failed_submit_leaves_the_session_failed_not_live(api: ApiHarness) -> None:
    api.queue.fail = True
    response = api.client.post(
        "/v1/sessions", json=api.session_body(avatar_image=b64(png_bytes())), headers=api.headers()
    )
    _assert_error(response, 503, "BACKEND_UNAVAILABLE")
    (session,) = api.store.list_for_tenant("tenant-a")
    assert session.state is SessionState.FAILED
    assert api.store.count_live("tenant-a") == 0


def test_a_tenant_over_its_concurrency_limit_is_refused(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path, default_concurrency_limit=1)
    body = api.session_body(avatar_image=b64(png_bytes()))
    assert api.client.post("/v1/sessions", json=body, headers=api.headers()).status_code == 201
    _assert_error(
        api.client.post("/v1/sessions", json=body, headers=api.headers()), 403, "CONCURRENCY_LIMIT_REACHED"
    )
    assert len(api.queue.messages) == 1
    assert api.client.post("/v1/sessions", json=body, headers=api.headers(api.secret_b)).status_code == 201


# ------------------------------------------ bad input: nothing stored, nothing enqueued
Post = Callable[[ApiHarness], Any]


def _json(**fields: object) -> Post:
    return lambda api: api.client.post("/v1/sessions", json=api.session_body(**fields), headers=api.headers())


def _with_agent(status: AgentStatus, tenant: str = "tenant-a") -> Post:
    def post(api: ApiHarness) -> Any:
        agent = api.agent(tenant=tenant, status=status)
        return api.client.post(
            "/v1/sessions", json=api.session_body(avatar_id=agent.id), headers=api.headers()
        )

    return post


def _raw(body: bytes, content_type: str = "application/json") -> Post:
    return lambda api: api.client.post(
        "/v1/sessions", content=body, headers={**api.headers(), "content-type": content_type}
    )


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> Post:
    return lambda api: api.client.post("/v1/sessions", data=fields, files=files, headers=api.headers())


def _big_image(api: ApiHarness) -> Any:
    buf = io.BytesIO()
    Image.effect_noise((1400, 1400), 64).convert("RGB").save(buf, format="PNG")
    assert len(buf.getvalue()) > 1024 * 1024
    return api.client.post(
        "/v1/sessions", json=api.session_body(avatar_image=b64(buf.getvalue())), headers=api.headers()
    )


IMAGE = b64(png_bytes())
BAD_INPUTS: dict[str, tuple[Post, int, str]] = {
    "no api-secret": (
        lambda api: api.client.post("/v1/sessions", json=api.session_body(avatar_image=IMAGE)),
        401,
        "UNAUTHORIZED",
    ),
    "wrong api-secret": (
        lambda api: api.client.post(
            "/v1/sessions", json=api.session_body(avatar_image=IMAGE), headers={"api-secret": "farm_nope"}
        ),
        401,
        "UNAUTHORIZED",
    ),
    "unknown model (json)": (_json(avatar_image=IMAGE, model="hologram"), 400, "MODEL_NOT_CONFIGURED"),
    "learned model without weights": (
        _json(avatar_image=IMAGE, model="expression-2"),
        400,
        "MODEL_NOT_CONFIGURED",
    ),
    "unknown model (multipart)": (
        _multipart(
            {"model": "hologram"},
            {
                "audio": ("a.wav", wav_bytes(), "audio/wav"),
                "avatar_image": ("f.png", png_bytes(), "image/png"),
            },
        ),
        400,
        "MODEL_NOT_CONFIGURED",
    ),
    "both avatar_id and avatar_image": (
        _json(avatar_id="A78WKV4515", avatar_image=IMAGE),
        400,
        "VALIDATION_ERROR",
    ),
    "neither avatar_id nor avatar_image": (_json(), 400, "VALIDATION_ERROR"),
    "malformed agent code": (_json(avatar_id="a78wkv4515"), 400, "VALIDATION_ERROR"),
    "unknown agent": (_json(avatar_id="A78WKV4515"), 404, "NOT_FOUND"),
    "another tenant's agent": (_with_agent(AgentStatus.READY, tenant="tenant-b"), 404, "NOT_FOUND"),
    "agent still processing": (_with_agent(AgentStatus.PROCESSING), 409, "AGENT_NOT_READY"),
    "corrupt image": (_json(avatar_image=b64(png_bytes()[:40])), 400, "INVALID_IMAGE"),
    "non-image upload": (_json(avatar_image=b64(b"%PDF-1.4 not an image")), 400, "INVALID_IMAGE"),
    "image over the byte limit": (_big_image, 413, "PAYLOAD_TOO_LARGE"),
    "decompression bomb": (_json(avatar_image=b64(_bomb_png())), 413, "PAYLOAD_TOO_LARGE"),
    "audio that does not decode": (
        _json(avatar_image=IMAGE, audio=b64(b"RIFF....garbage" * 50)),
        400,
        "INVALID_AUDIO",
    ),
    "audio that is not base64": (
        _json(avatar_image=IMAGE, audio="@@@not-base64@@@"),
        400,
        "VALIDATION_ERROR",
    ),
    "missing audio": (
        lambda api: api.client.post("/v1/sessions", json={"avatar_image": IMAGE}, headers=api.headers()),
        400,
        "VALIDATION_ERROR",
    ),
    "malformed JSON": (_raw(b'{"audio": "AAAA", "avatar_image": '), 400, "MALFORMED_JSON"),
    "JSON that is not an object": (_raw(b'["audio"]'), 400, "VALIDATION_ERROR"),
    "multipart without audio": (
        _multipart({"model": "essence"}, {"avatar_image": ("f.png", png_bytes(), "image/png")}),
        400,
        "VALIDATION_ERROR",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_and_leaves_nothing_behind(tmp_path: Path, case: str) -> None:
    api = ApiHarness.build(tmp_path, max_image_mb=1.0, max_image_pixels=4_000_000)
    post, status, code = BAD_INPUTS[case]
    _assert_error(post(api), status, code)
    assert api.stored_nothing()


def test_an_oversized_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path, max_image_mb=0.5, max_audio_mb=0.5)
    response = api.client.post(
        "/v1/sessions",
        content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
        headers={**api.headers(), "content-type": "application/json"},
    )
    _assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert api.stored_nothing()


def test_a_revoked_key_is_unauthorized(api: ApiHarness) -> None:
    key, secret = api.keys.create("tenant-c", "c")
    api.keys.revoke(key.key_id)
    _assert_error(api.client.get("/v1/sessions", headers=api.headers(secret)), 401, "UNAUTHORIZED")


def test_audio_longer_than_the_limit_is_too_large(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path, max_audio_s=0.2)
    body = api.session_body(avatar_image=b64(png_bytes()), audio=b64(wav_bytes(1.0)))
    _assert_error(api.client.post("/v1/sessions", json=body, headers=api.headers()), 413, "PAYLOAD_TOO_LARGE")
    assert api.stored_nothing()


def test_an_uploaded_file_over_the_image_limit_is_too_large(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path, max_image_mb=0.01)
    files = {
        "audio": ("a.wav", wav_bytes(), "audio/wav"),
        "avatar_image": ("f.png", b"\x89PNG" + b"0" * 20_000, "image/png"),
    }
    response = api.client.post("/v1/sessions", files=files, headers=api.headers())
    _assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert api.stored_nothing()


def test_a_session_for_an_avatar_a_ready_worker_holds_is_routed_to_that_worker(api: ApiHarness) -> None:
    held, other = api.agent(), api.agent()
    api.registry.publish(
        WorkerInfo(
            worker_id="w1",
            hostname="h",
            pid=1,
            queues=["essence"],
            state="READY",
            capacity=2,
            cached_avatars=[held.id],
            warm_queue="render.w.w1",
        ),
        30,
    )
    routed = api.client.post("/v1/sessions", json=api.session_body(avatar_id=held.id), headers=api.headers())
    shared = api.client.post("/v1/sessions", json=api.session_body(avatar_id=other.id), headers=api.headers())

    assert routed.status_code == shared.status_code == 201
    assert [(m.worker_id if isinstance(m, RunSessionMessage) else m) for m in api.queue.messages] == [
        "w1",
        None,
    ]
    view = api.client.get(f"/v1/sessions/{routed.json()['session_id']}", headers=api.headers()).json()
    assert view["routed_to"] == "w1"
    fleet = api.client.get("/v1/fleet", headers=api.headers()).json()["queues"]["essence"]["workers"]
    assert fleet[0]["cached_avatars"] == [held.id] and fleet[0]["warm_queue"] == "render.w.w1"
