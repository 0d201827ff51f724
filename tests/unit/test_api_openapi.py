"""The published OpenAPI document says what the API enforces, so generated clients and fuzzers
send what it accepts: patterns, ranges, exclusive fields, the room-start body, every error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.api_support import ApiHarness

pytestmark = pytest.mark.unit

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def spec(tmp_path: Path) -> dict[str, Any]:
    document: dict[str, Any] = ApiHarness.build(tmp_path).client.get("/openapi.json").json()
    return document


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), path, item[m]) for path, item in spec["paths"].items() for m in METHODS if m in item]


def _param(operation: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p["schema"] for p in operation.get("parameters", []) if p["name"] == name)


def test_ids_and_pages_carry_their_patterns_and_bounds(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert _param(paths["/v1/agents/{agent_id}"]["get"], "agent_id")["pattern"] == "^[A-Z][A-Z0-9]{9}$"
    assert _param(paths["/v1/sessions/{session_id}"]["get"], "session_id")["pattern"] == "^[0-9a-f]{32}$"
    limit, offset = (_param(paths["/v1/sessions"]["get"], n) for n in ("limit", "offset"))
    assert (limit["minimum"], limit["maximum"], offset["minimum"], offset["maximum"]) == (
        1,
        100,
        0,
        1_000_000,
    )


def test_every_error_an_operation_can_answer_is_documented_with_the_envelope(spec: dict[str, Any]) -> None:
    for method, path, operation in _operations(spec):
        responses = operation["responses"]
        assert "422" not in responses, f"{method} {path}: FastAPI's 422 is never sent"
        errors = {int(s): r for s, r in responses.items() if int(s) >= 400}
        if operation.get("security"):
            assert {401, 402, 403, 429, 503} <= set(errors), f"{method} {path}"
        for status, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, f"{method} {path} {status}"
            if status in (429, 503):
                assert "Retry-After" in response["headers"], f"{method} {path} {status}"
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    text = json.dumps(spec)
    assert "#/$defs/" not in text
    schemas = spec["components"]["schemas"]
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in schemas, ref


def _json_body(spec: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    return schema


def test_the_room_start_body_and_its_exclusive_fields_are_declared(spec: dict[str, Any]) -> None:
    start = spec["paths"]["/v1/runtime-tokens/request"]["post"]
    content = start["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data", "application/x-www-form-urlencoded"}
    assert set(content["application/json"]["schema"]["required"]) == {
        "livekit_url",
        "livekit_token",
        "room_name",
    }
    assert start["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}]
    session = _json_body(spec, "/v1/sessions")
    assert [branch["required"] for branch in session["oneOf"]] == [["avatar_id"], ["avatar_image"]]
    video = _json_body(spec, "/v1/video/generate")
    assert [[b["required"] for b in part["oneOf"]] for part in video["allOf"]] == [
        [["agent_id"], ["image"]],
        [["text"], ["audio"]],
    ]
