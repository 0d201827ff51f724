"""The published OpenAPI document: FastAPI's, made exact for generated clients and fuzzers.

FastAPI's own document needs three corrections, made here once when it is first built:

* it announces a 422 with FastAPI's error shape that this API never sends (request validation is
  400 VALIDATION_ERROR in the envelope, ``farm.api.errors``): removed;
* request bodies that routes decode themselves (size-capped, ``openapi_extra``) carry their models'
  ``$defs`` inline, where ``#/$defs/...`` references cannot resolve: hoisted to components;
* the errors an operation can answer are documented from the FarmError tree: every authenticated
  operation 401/402/403/429/503, every one with input 400, with a path parameter 404, with a body
  413; 429 and 503 with ``Retry-After``. Each lists its stable codes and the envelope schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from farm.kernel.errors import FarmError

from .schemas import ErrorEnvelope

_ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_SUMMARY = {
    400: "Invalid request",
    401: "Missing, unknown, revoked or expired credentials",
    402: "Credits spent",
    403: "Not allowed for this key",
    404: "Not found, or owned by another tenant",
    409: "Conflict with the resource's state",
    413: "Upload over a size limit",
    429: "Rate limited",
    503: "A backend is unavailable or has no capacity; retry",
}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    """Serve the exact document at ``app.openapi_url`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = exact_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def exact_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document for ``app`` with the corrections above."""
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas: dict[str, Any] = spec.setdefault("components", {}).setdefault("schemas", {})
    _hoist_defs(spec.get("paths", {}), schemas)
    schemas["ErrorEnvelope"] = _envelope_schema(schemas)
    codes = codes_by_status()
    for operation in _operations(spec):
        _document_errors(operation, codes)
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    return spec


def codes_by_status() -> dict[int, list[str]]:
    """Every stable error code the farm defines, by HTTP status (the FarmError tree, walked)."""
    found: dict[int, set[str]] = {}
    pending: list[type[FarmError]] = [FarmError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        found.setdefault(cls.http_status, set()).add(cls.code)
    found.setdefault(400, set()).add("VALIDATION_ERROR")
    found.setdefault(404, set()).add("NOT_FOUND")
    return {status: sorted(codes) for status, codes in found.items()}


def _operations(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in spec.get("paths", {}).values():
        for method in _METHODS:
            if method in item:
                yield item[method]


def _document_errors(operation: dict[str, Any], codes: dict[int, list[str]]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    params = operation.get("parameters", [])
    statuses = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
    if operation.get("security"):
        statuses |= {401, 402, 403, 429, 503}
    if params or "requestBody" in operation:
        statuses.add(400)
    if any(p.get("in") == "path" for p in params):
        statuses.add(404)
    if "requestBody" in operation:
        statuses.add(413)
    if statuses:
        statuses.add(503)  # whatever touches Redis answers 503 during an outage
    for status in sorted(statuses):
        responses[str(status)] = _error_response(status, codes.get(status, []))


def _error_response(status: int, codes: list[str]) -> dict[str, Any]:
    summary = _SUMMARY.get(status, "Error")
    response: dict[str, Any] = {
        "description": f"{summary} ({', '.join(codes)})" if codes else summary,
        "content": {"application/json": {"schema": _ENVELOPE_REF}},
    }
    if status in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response


def _envelope_schema(schemas: dict[str, Any]) -> dict[str, Any]:
    """ErrorEnvelope with its body inlined (one self-contained component)."""
    schema = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    return schema


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Move every inline ``$defs`` into components and point ``#/$defs/X`` references there."""
    if isinstance(node, dict):
        for name, definition in node.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
            _hoist_defs(definition, schemas)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        for value in node.values():
            _hoist_defs(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, schemas)
