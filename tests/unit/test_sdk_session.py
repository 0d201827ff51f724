"""The SDK's AvatarSession: parameters, error classes by stable code, and retries on retryable errors only.

Transport behaviour (flaky answers) is scripted with httpx's MockTransport so retry counts are exact;
the full round trip (real HTTP, workers, espeak-ng) is tests/integration/test_sdk_avatar_session.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from PIL import Image

import farm.client as bithuman
from farm.client import (
    AsyncAvatarSession,
    AuthenticationError,
    AvatarError,
    AvatarSession,
    ConflictError,
    NetworkError,
    NotFoundError,
    QuotaExceededError,
    RequestError,
    error_for,
)

pytestmark = pytest.mark.unit


def _envelope(code: str, status: int) -> dict[str, object]:
    return {"error": {"code": code, "message": f"{code} happened", "httpStatus": status}, "status": "error"}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "UNAUTHORIZED", AuthenticationError),
        (402, "INSUFFICIENT_BALANCE", QuotaExceededError),
        (403, "CONCURRENCY_LIMIT_REACHED", QuotaExceededError),
        (429, "RATE_LIMITED", QuotaExceededError),
        (503, "BACKEND_UNAVAILABLE", NetworkError),
        (500, "INTERNAL_ERROR", NetworkError),
        (404, "NOT_FOUND", NotFoundError),
        (409, "AGENT_NOT_READY", ConflictError),
        (400, "NO_FACE_FOUND", RequestError),
    ],
)
def test_server_codes_map_to_the_sdk_errors_with_code_status_and_message(
    status: int, code: str, cls: type[AvatarError]
) -> None:
    error = error_for(status, _envelope(code, status))
    assert type(error) is cls and isinstance(error, AvatarError)
    assert (error.code, error.status, error.message) == (code, status, f"{code} happened")


def test_a_non_envelope_answer_still_maps_by_status() -> None:
    error = error_for(502, "<html>bad gateway</html>")
    assert isinstance(error, NetworkError) and error.status == 502


def test_the_documented_names_are_importable_as_bithuman_would_be() -> None:
    for name in ("AvatarSession", "AuthenticationError", "QuotaExceededError", "NetworkError"):
        assert hasattr(bithuman, name)


def test_at_most_one_of_avatar_id_and_avatar_image_and_generating_needs_one() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        AvatarSession(avatar_id="A78WKV4515", avatar_image=Image.new("RGB", (8, 8)), api_secret="s")
    with pytest.raises(ValueError, match="model"):
        AvatarSession(avatar_id="A78WKV4515", api_secret="s", model="essence-9")
    raw_api_only = AvatarSession(
        api_secret="s", http=_client(httpx.MockTransport(lambda r: httpx.Response(500)))
    )
    with pytest.raises(ValueError, match="names no avatar"):
        raw_api_only.generate_response("hi")


def test_the_secret_defaults_to_the_environment_and_its_absence_is_an_authentication_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FARM_API_SECRET", raising=False)
    monkeypatch.delenv("BITHUMAN_API_SECRET", raising=False)
    with pytest.raises(AuthenticationError) as missing:
        AvatarSession(avatar_id="A78WKV4515")
    assert (missing.value.code, missing.value.status) == ("MISSING_AUTH", 401)
    monkeypatch.setenv("BITHUMAN_API_SECRET", "from-env")
    seen: list[str] = []
    transport = httpx.MockTransport(lambda r: seen.append(r.headers["api-secret"]) or httpx.Response(401))
    with (
        AvatarSession(avatar_id="A78WKV4515", http=_client(transport)) as avatar,
        pytest.raises(AuthenticationError),
    ):
        avatar.generate_response("hi")
    assert seen == ["from-env"]


def _client(transport: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(base_url="http://farm", transport=transport)


def _scripted(answers: list[httpx.Response | Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def _avatar(transport: httpx.MockTransport, **kw: object) -> AvatarSession:
    return AvatarSession(
        avatar_id="A78WKV4515", api_secret="s", http=_client(transport), backoff_s=0.001, **kw
    )  # type: ignore[arg-type]


CREATED = {
    "session_id": "abc",
    "status": "QUEUED",
    "status_url": "http://farm/v1/sessions/abc",
    "video_url": "http://farm/v1/sessions/abc/video",
    "reply_text": "hi",
    "duration_s": 1.25,
}
ENDED = {
    "session_id": "abc",
    "status": "ENDED",
    "output": "/out/abc.mp4",
    "created_at": 100.0,
    "history": [
        {"state": "QUEUED", "at": 100.0},
        {"state": "STREAMING", "at": 100.5},
        {"state": "ENDED", "at": 102.0},
    ],
}


def test_5xx_and_connection_errors_are_retried_with_the_same_idempotency_key() -> None:
    transport, seen = _scripted(
        [
            httpx.ConnectError("refused"),
            httpx.Response(503, json=_envelope("BACKEND_UNAVAILABLE", 503)),
            httpx.Response(201, json=CREATED),
            httpx.Response(200, json=ENDED),
        ]
    )
    response = _avatar(transport).generate_response("hi")
    posts = [r for r in seen if r.method == "POST"]
    assert len(posts) == 3
    assert len({r.headers["Idempotency-Key"] for r in posts}) == 1
    assert json.loads(posts[0].content) == {"agent_id": "A78WKV4515", "text": "hi", "model": "essence"}
    assert (response.text, response.duration_s, response.video_path) == ("hi", 1.25, "/out/abc.mp4")
    assert response.first_frame_s is not None and response.first_frame_s >= 0.5
    assert response.total_s > 0


def test_a_rate_limit_waits_retry_after_then_succeeds() -> None:
    limited = httpx.Response(429, json=_envelope("RATE_LIMITED", 429), headers={"Retry-After": "0"})
    transport, seen = _scripted([limited, httpx.Response(201, json=CREATED), httpx.Response(200, json=ENDED)])
    assert _avatar(transport).generate_response("hi").session_id == "abc"
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "VALIDATION_ERROR", RequestError),
        (402, "INSUFFICIENT_BALANCE", QuotaExceededError),
        (401, "UNAUTHORIZED", AuthenticationError),
    ],
)
def test_non_retryable_errors_raise_at_once(status: int, code: str, cls: type[AvatarError]) -> None:
    transport, seen = _scripted([httpx.Response(status, json=_envelope(code, status))])
    with pytest.raises(cls):
        _avatar(transport).generate_response("hi")
    assert len(seen) == 1


def test_retries_give_up_with_a_network_error_after_max_retries() -> None:
    transport, seen = _scripted([httpx.ReadTimeout("slow")] * 3)
    with pytest.raises(NetworkError) as failed:
        _avatar(transport, max_retries=2).generate_response("hi")
    assert failed.value.code == "TIMEOUT"
    assert len(seen) == 3


def test_a_pil_image_is_sent_as_png_and_expression_is_passed_through() -> None:
    transport, seen = _scripted([httpx.Response(201, json=CREATED), httpx.Response(200, json=ENDED)])
    avatar = AvatarSession(
        avatar_image=Image.new("RGB", (16, 16), (200, 100, 50)),
        api_secret="s",
        model="expression",
        http=_client(transport),
    )
    avatar.generate_response("hi")
    body = json.loads(seen[0].content)
    assert body["model"] == "expression"
    import base64

    assert base64.b64decode(body["image"]).startswith(b"\x89PNG")


def test_the_async_session_has_the_same_behaviour() -> None:
    def handler_from(answers: list[httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
        return lambda _request: answers.pop(0)

    answers = [
        httpx.Response(503, json=_envelope("NO_CAPACITY", 503)),
        httpx.Response(201, json=CREATED),
        httpx.Response(200, json={**ENDED, "status": "STREAMING"}),
        httpx.Response(200, json=ENDED),
    ]

    async def run() -> str:
        http = httpx.AsyncClient(base_url="http://farm", transport=httpx.MockTransport(handler_from(answers)))
        async with AsyncAvatarSession(
            avatar_id="A78WKV4515", api_secret="s", http=http, backoff_s=0.001, poll_s=0.001
        ) as avatar:
            return (await avatar.generate_response("hi")).text

    assert asyncio.run(run()) == "hi"
    assert answers == []


def test_a_failed_render_is_a_render_error_with_the_workers_code() -> None:
    failed = {**ENDED, "status": "FAILED", "failure": {"code": "PACK_CORRUPT", "message": "bad pack"}}
    transport, _ = _scripted([httpx.Response(201, json=CREATED), httpx.Response(200, json=failed)])
    with pytest.raises(bithuman.RenderError) as err:
        _avatar(transport).generate_response("hi")
    assert err.value.code == "PACK_CORRUPT"


def test_debug_logs_every_request_and_retry(caplog: pytest.LogCaptureFixture) -> None:
    transport, _ = _scripted(
        [
            httpx.Response(503, json=_envelope("NO_CAPACITY", 503)),
            httpx.Response(201, json=CREATED),
            httpx.Response(200, json=ENDED),
        ]
    )
    with caplog.at_level("DEBUG", logger="avatar_farm_client"):
        _avatar(transport, debug=True).generate_response("hi")
    lines = [r.getMessage() for r in caplog.records if r.name == "avatar_farm_client"]
    assert lines[0].startswith("POST /v1/video/generate -> 503")
    assert lines[1].startswith("retry 1 of /v1/video/generate after NO_CAPACITY")
    assert any(line.startswith("GET /v1/sessions/abc -> 200") for line in lines)
