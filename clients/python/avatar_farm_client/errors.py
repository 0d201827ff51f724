"""The SDK's errors: one base (``AvatarError``) and the classes users catch, chosen by stable code.

``AuthenticationError`` (401), ``QuotaExceededError`` (out of credits, over the plan's concurrency,
rate limited), ``NetworkError`` (cannot connect, timed out, 5xx — after the retries), ``RenderError``
(the session failed on a worker) and ``RequestError`` (any other refusal: bad input, unknown agent,
agent not ready; ``NotFoundError`` and ``ConflictError`` narrow it). Each carries ``code`` (the
farm's stable code), ``status`` (HTTP, 0 when no response came) and ``message``.

The client knows the server's codes as data (``CODES``), not by importing the server: a test in the
farm's suite walks the server's ``FarmError`` tree and checks that every code is in this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class AvatarError(Exception):
    """Base of every error the SDK raises."""

    def __init__(
        self, message: str, *, code: str = "ERROR", status: int = 0, retry_after_s: float | None = None
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status else ""
        return f"{where}{self.code}: {self.message}"


class AuthenticationError(AvatarError):
    """The ``api-secret`` is missing, unknown, revoked or expired (401)."""


class QuotaExceededError(AvatarError):
    """Out of credits (402), over the plan's concurrent sessions (403) or rate limited (429)."""


class NetworkError(AvatarError):
    """The farm could not be reached, timed out, or answered a transient 5xx — after the retries."""


class RequestError(AvatarError):
    """The farm refused the request (validation, not found, conflict, payload too large, scope)."""


class NotFoundError(RequestError):
    """No such record for this key's tenant (another tenant's records are not found either)."""


class ConflictError(RequestError):
    """The record's state forbids it (agent not ready, session already ended, live sessions)."""


class RenderError(AvatarError):
    """The render failed on a worker (``code`` is the worker's failure code)."""


_AUTH = ("UNAUTHORIZED", "MISSING_AUTH", "KEY_EXPIRED")
_QUOTA = (
    "INSUFFICIENT_BALANCE",
    "CONCURRENCY_LIMIT_REACHED",
    "RATE_LIMITED",
    "SESSION_LIMIT",
    "metering_out_of_credits",
    "metering_concurrency_limit_reached",
    "metering_plan_required",
)
_TRANSIENT = (
    "INTERNAL_ERROR",
    "BACKEND_UNAVAILABLE",
    "NO_CAPACITY",
    "SPEECH_UNAVAILABLE",
    "REQUEST_TIMEOUT",
    "LIVEKIT_SERVER_UNAVAILABLE",
    "TIMEOUT",
    "CONNECTION_ERROR",
)
_RENDER = (
    "RENDER_FAILED",
    "PACK_CORRUPT",
    "PACK_VERSION_MISMATCH",
    "PREWARM_FAILED",
    "MODEL_WEIGHTS_INVALID",
    "MODEL_FILE_INVALID",
    "VISEME_MODEL_INVALID",
    "LEASE_LOST",
    "LEASE_EXPIRED",
    "BATCH_SIZE_MISMATCH",
    "BATCHER_CLOSED",
    "QUEUE_TIMEOUT",
    "ROOM_JOIN_FAILED",
)
_REQUEST = (
    "VALIDATION_ERROR",
    "MALFORMED_JSON",
    "INVALID_IMAGE",
    "INVALID_AUDIO",
    "NO_FACE_FOUND",
    "FACE_TOO_SMALL",
    "UNKNOWN_GESTURE",
    "POINTS_REQUIRED",
    "POINTS_OUTSIDE_IMAGE",
    "MOUTH_TOO_SMALL",
    "MODE_NOT_SUPPORTED",
    "MODEL_NOT_CONFIGURED",
    "LIVEKIT_URL_NOT_ALLOWED",
    "LIVEKIT_NOT_CONFIGURED",
    "ASSET_MISSING",
    "KEY_SCOPE",
    "ADMIN_ONLY",
    "FORBIDDEN",
    "PAYLOAD_TOO_LARGE",
    "METHOD_NOT_ALLOWED",
    "UNSUPPORTED_MEDIA_TYPE",
    "HEADERS_TOO_LARGE",
)
_NOT_FOUND = ("NOT_FOUND",)
_CONFLICT = ("CONFLICT", "ILLEGAL_TRANSITION", "AGENT_NOT_READY")

CODES: Mapping[str, type[AvatarError]] = {
    **dict.fromkeys(_AUTH, AuthenticationError),
    **dict.fromkeys(_QUOTA, QuotaExceededError),
    **dict.fromkeys(_TRANSIENT, NetworkError),
    **dict.fromkeys(_RENDER, RenderError),
    **dict.fromkeys(_REQUEST, RequestError),
    **dict.fromkeys(_NOT_FOUND, NotFoundError),
    **dict.fromkeys(_CONFLICT, ConflictError),
}
"""Every stable code the farm answers with, and the SDK error it becomes."""


def _by_status(status: int) -> type[AvatarError]:
    """The class of a code this SDK does not know (a newer farm), from the HTTP status alone."""
    if status == 401:
        return AuthenticationError
    if status in (402, 429):
        return QuotaExceededError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status >= 500:
        return NetworkError
    return RequestError


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_for(status: int, body: Any, headers: Mapping[str, str] | None = None) -> AvatarError:
    """The SDK error an HTTP error answer stands for (by the envelope's stable code, else status)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code, message = str(err.get("code", f"HTTP_{status}")), str(err.get("message", ""))
    else:
        code, message = f"HTTP_{status}", str(body)[:200] or f"HTTP {status}"
    cls = CODES.get(code) or _by_status(status)
    return cls(message, code=code, status=status, retry_after_s=_retry_after(headers))


def is_retryable(error: AvatarError) -> bool:
    """Worth another try: no answer or a transient 5xx, or a rate limit (which says when to come back)."""
    if isinstance(error, NetworkError):
        return True
    return isinstance(error, QuotaExceededError) and error.code == "RATE_LIMITED"
