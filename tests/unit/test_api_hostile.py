"""Hostile requests get a 4xx in the error envelope, never a 500, on every route that reads input.

Each class of input is sent to every body-reading route (bodies) or to the routes with query and
path parameters (parameters): nesting deeper than the JSON parser recurses, integers too long to
convert, NaN, invalid UTF-8, wrong JSON types, wrong content types, empty and broken multipart,
unknown fields, out-of-range and non-numeric pages, ids with odd characters and unicode.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.api_support import ApiHarness

pytestmark = pytest.mark.unit

AGENT = "A000000001"
SESSION = "0" * 32
BODY_ROUTES = [
    ("POST", "/v1/sessions"),
    ("POST", "/v1/agents"),
    ("PATCH", f"/v1/agents/{AGENT}"),
    ("POST", f"/v1/agent/{AGENT}"),
    ("POST", f"/v1/agent/{AGENT}/speak"),
    ("POST", "/v1/video/generate"),
    ("POST", "/v1/tts"),
    ("POST", "/v1/runtime-tokens/request"),
    ("POST", "/v1/runtime-tokens/mint"),
    ("POST", f"/v1/dynamics/{AGENT}/trigger"),
    ("POST", f"/v1/sessions/{SESSION}/dynamics"),
    ("PUT", f"/v1/dynamics/{AGENT}/rules"),
    ("POST", "/v1/rooms/room-1/viewer"),
]
JSON = "application/json"
BODIES = {
    "nested deeper than the parser recurses": (b"[" * 50_000 + b"]" * 50_000, JSON),
    "objects nested deeper than that": (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, JSON),
    "an integer too long to convert": (
        b'{"ttl_s": 1' + b"0" * 5000 + b', "text": 1' + b"0" * 5000 + b"}",
        JSON,
    ),
    "NaN and Infinity": (b'{"ttl_s": NaN, "action": Infinity, "crop_scale": -Infinity}', JSON),
    "invalid UTF-8": (b'{"audio": "\xff\xfe", "action": "\xc3\x28"}', JSON),
    "a bare number": (b"5", JSON),
    "a list": (b'[{"audio": "x"}]', JSON),
    "wrong types": (
        b'{"audio": 5, "image": [1], "action": {}, "text": [], "ttl_s": "x", "livekit_url": 7}',
        JSON,
    ),
    "unknown and nested junk fields": (b'{"junk": {"a": [[[{"b": null}]]]}, "__proto__": {}}', JSON),
    "JSON as text/plain": (b'{"audio": "UklGRg=="}', "text/plain"),
    "an empty multipart": (b"", "multipart/form-data; boundary=xyz"),
    "a broken multipart": (
        b"--xyz\r\nContent-Disposition: form-data\r\n\r\n",
        "multipart/form-data; boundary=xyz",
    ),
    "multipart without a boundary": (b"abc", "multipart/form-data"),
    "a broken url-encoded form": (b"a=%ff%fe&b&=&%zz", "application/x-www-form-urlencoded"),
    "an unknown content type": (b"\x00\x01\x02", "application/x-garbage"),
}
QUERIES = [
    "/v1/sessions?limit=abc",
    "/v1/sessions?limit=-1",
    "/v1/sessions?limit=" + "9" * 50,
    "/v1/sessions?offset=-5",
    "/v1/sessions?offset=" + "9" * 30,
    "/v1/sessions?offset=1e3",
    "/v1/agents?offset=" + "9" * 30,
    "/v1/agents?limit=0",
    "/v1/agents?status=%ff",
    "/v1/agents?page=-1&limit=%00",
]
PATHS = [
    "/v1/agents/%F0%9F%98%80",
    "/v1/agents/a78wkv4515",
    "/v1/agent/status/%00",
    "/v1/sessions/%00",
    "/v1/sessions/" + "a" * 10_000,
    "/v1/sessions/..%2F..%2Fetc%2Fpasswd",
    f"/v1/sessions/{SESSION}/video",
    f"/v1/dynamics/{AGENT}/previews/..%2f..%2fsecret.mp4",
    f"/v1/dynamics/{AGENT}/previews/%C3%A9.mp4",
    "/v1/dynamics/%E2%80%AE",
    "/scaling/%ff",
    "/scaling/essence%00",
    "/view/%F0%9F%98%80",
]


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    lk = {"livekit_url": "wss://lk.example", "livekit_api_key": "k", "livekit_api_secret": "s" * 40}
    return ApiHarness.build(tmp_path, **lk)


def _assert_refused_in_the_envelope(response: object, what: str) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    assert 400 <= status < 500, f"{what}: {status} {response.text[:300]}"  # type: ignore[attr-defined]
    assert response.json()["error"]["httpStatus"] == status, what  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", list(BODIES))
def test_a_hostile_body_is_refused_with_a_4xx_on_every_route_that_reads_one(
    api: ApiHarness, kind: str
) -> None:
    body, content_type = BODIES[kind]
    for method, path in BODY_ROUTES:
        response = api.client.request(
            method, path, content=body, headers={**api.headers(), "content-type": content_type}
        )
        _assert_refused_in_the_envelope(response, f"{kind}: {method} {path}")
    assert api.stored_nothing()


@pytest.mark.parametrize("url", QUERIES + PATHS)
def test_hostile_parameters_and_ids_are_refused_with_a_4xx(api: ApiHarness, url: str) -> None:
    _assert_refused_in_the_envelope(api.client.get(url, headers=api.headers()), url)


def test_a_malformed_body_is_malformed_json_with_a_message_a_person_can_act_on(api: ApiHarness) -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    response = api.client.post("/v1/sessions", content=deep, headers={**api.headers(), "content-type": JSON})

    assert (response.status_code, response.json()["error"]["code"]) == (400, "MALFORMED_JSON")
    assert "not valid JSON" in response.json()["error"]["message"]


def test_a_wrong_method_is_405_with_allow(api: ApiHarness) -> None:
    response = api.client.put("/v1/sessions", headers=api.headers())

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_a_runtime_key_with_non_ascii_characters_is_401_not_a_crash(api: ApiHarness) -> None:
    secret = "farm_rt_e30.sig\u00e9\u00ff".encode("latin-1")  # compare_digest refuses non-ASCII str
    response = api.client.post("/v1/runtime-tokens/request", json={}, headers={"api-secret": secret})
    assert response.status_code == 401
