"""Every error the API returns goes through here, in one envelope (``FarmError.envelope()``).

FarmError → its own status and code; a Redis outage (connection refused, timeout, loading, read-only
replica during a failover) that a store did not translate → 503 BACKEND_UNAVAILABLE with
``Retry-After``; FastAPI's request validation → 400 VALIDATION_ERROR;
Starlette HTTP errors (unknown route, wrong method) → their status with a stable code; anything
else → 500 INTERNAL_ERROR without internals in the message (logged with the request id).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from farm.infra.redis_conn import UNAVAILABLE_ERRORS
from farm.kernel.errors import BackendUnavailable, FarmError, MalformedJson, ValidationError, error_body

from .inputs import describe_errors
from .routing import flat_routes

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def envelope_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status)


def error_response(exc: FarmError) -> JSONResponse:
    response = JSONResponse(exc.envelope(), status_code=exc.http_status)
    if exc.retryable:
        response.headers["Retry-After"] = "1"
    return response


async def _farm_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FarmError)
    return error_response(exc)


async def _backend_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("redis unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
    return error_response(BackendUnavailable(f"redis is unavailable ({type(exc).__name__}); retry shortly"))


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(MalformedJson("the request body is not valid JSON"))
    return error_response(ValidationError(describe_errors(errors)))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    response = envelope_response(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:  # Starlette names only the first matching route's methods
        response.headers["Allow"] = ", ".join(allowed_methods(request.app.router.routes, request.url.path))
    return response


def allowed_methods(routes: Sequence[BaseRoute], path: str) -> list[str]:
    """Every method some route serves at ``path``."""
    methods = {
        m for route in flat_routes(routes) if route.path_regex.fullmatch(path) for m in route.methods or ()
    }
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"path": request.url.path, "request_id": getattr(request.state, "request_id", None)},
    )
    return envelope_response(500, "INTERNAL_ERROR", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception type to the one envelope."""
    app.add_exception_handler(FarmError, _farm_error)
    for outage in UNAVAILABLE_ERRORS:
        app.add_exception_handler(outage, _backend_down)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
