"""The SDK's sans-IO core, driven by hand: no socket, no sleep, every step visible.

A flow yields what it needs (send this request, wait this long) and is told what happened; these
tests play the farm's part, so retry and polling decisions are checked without any transport.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from avatar_farm_client._api import Config, Farm
from avatar_farm_client._core import (
    Flow,
    HttpRequest,
    HttpResponse,
    Reply,
    RetryPolicy,
    Sleep,
    Step,
    TransportFailure,
)
from avatar_farm_client.errors import NetworkError, QuotaExceededError

pytestmark = pytest.mark.unit


def _json(status: int, body: Any, **headers: str) -> HttpResponse:
    return HttpResponse(
        status, {k.lower().replace("_", "-"): v for k, v in headers.items()}, json.dumps(body).encode()
    )


def _farm(**policy: Any) -> Farm:
    ticks: Iterator[float] = iter(range(1_000_000))
    config = Config(api_url="http://farm", api_secret="s", avatar_id="A78WKV4515", poll_s=0.25)
    return Farm(config, RetryPolicy(jitter=lambda: 1.0, **policy), clock=lambda: float(next(ticks)))


def _play(flow: Flow[Any], replies: list[Reply]) -> tuple[list[Step], Any]:
    """Run ``flow``, answering each HttpRequest with the next reply; the steps it took, its result."""
    steps: list[Step] = []
    reply: Reply = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as done:
            return steps, done.value
        steps.append(step)
        reply = replies.pop(0) if isinstance(step, HttpRequest) else None


ERROR_503 = _json(503, {"error": {"code": "BACKEND_UNAVAILABLE", "message": "down"}})
CREATED = {"session_id": "abc", "video_url": "u", "duration_s": 1.0, "reply_text": None}
SESSION = {"session_id": "abc", "status": "ENDED", "created_at": 0.0, "history": []}


def test_generating_posts_once_per_attempt_with_one_key_then_polls_until_ended() -> None:
    replies: list[Reply] = [
        TransportFailure("CONNECTION_ERROR", "refused", sent=False),
        ERROR_503,
        _json(201, CREATED),
        _json(200, {**SESSION, "status": "STREAMING"}),
        _json(200, SESSION),
    ]
    steps, response = _play(_farm().generate("hi", client=None), replies)
    requests = [s for s in steps if isinstance(s, HttpRequest)]
    assert [(r.method, r.path) for r in requests] == [("POST", "/v1/video/generate")] * 3 + [
        ("GET", "/v1/sessions/abc")
    ] * 2
    assert len({r.headers["Idempotency-Key"] for r in requests[:3]}) == 1
    assert [s.seconds for s in steps if isinstance(s, Sleep)] == [0.5, 1.0, 0.25]  # backoff, backoff, poll
    assert response.session_id == "abc" and response.text == "hi"


def test_a_post_without_an_idempotency_key_is_not_resent_once_it_may_have_landed() -> None:
    flow = _farm().create_session(
        audio=b"wav", avatar_id="A78WKV4515", avatar_image=None, model="essence", audio_filename="a.wav"
    )
    with pytest.raises(NetworkError):
        _play(flow, [ERROR_503])
    refused_then_created: list[Reply] = [
        TransportFailure("CONNECTION_ERROR", "refused", sent=False),
        _json(201, {"session_id": "abc", "status": "QUEUED"}),
    ]
    flow = _farm().create_session(
        audio=b"wav", avatar_id="A78WKV4515", avatar_image=None, model="essence", audio_filename="a.wav"
    )
    steps, created = _play(flow, refused_then_created)
    assert created.status == "QUEUED" and sum(isinstance(s, HttpRequest) for s in steps) == 2


def test_a_rate_limit_waits_what_retry_after_says_and_gives_up_after_max_retries() -> None:
    limited = _json(429, {"error": {"code": "RATE_LIMITED", "message": "slow down"}}, Retry_After="7")
    flow = _farm(max_retries=2).get_session("abc")
    with pytest.raises(QuotaExceededError) as gave_up:
        _play(flow, [limited, limited, limited])
    assert gave_up.value.retry_after_s == 7.0


def test_a_health_probe_is_one_request_and_never_raises() -> None:
    steps, healthy = _play(_farm().healthy(), [TransportFailure("TIMEOUT", "slow")])
    assert healthy is False and len(steps) == 1
