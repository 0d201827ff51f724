"""The SDK's errors: one base (``AvatarError``) and the classes users catch, chosen by stable code.

``AuthenticationError`` (401), ``QuotaExceededError`` (out of credits, over the plan's concurrency,
rate limited), ``NetworkError`` (cannot connect, timed out, 5xx after retries), ``RenderError`` (the
session failed on a worker) and ``RequestError`` (any other refusal: bad input, unknown agent,
agent not ready). Each carries ``code``, ``status`` (HTTP, 0 when no response came) and ``message``.
"""

from __future__ import annotations

from typing import Any

QUOTA_CODES = frozenset(
    {
        "INSUFFICIENT_BALANCE",
        "CONCURRENCY_LIMIT_REACHED",
        "RATE_LIMITED",
        "SESSION_LIMIT",
        "metering_out_of_credits",
        "metering_concurrency_limit_reached",
        "metering_plan_required",
    }
)
AUTH_CODES = frozenset({"UNAUTHORIZED", "MISSING_AUTH"})


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
    """The ``api-secret`` is missing, unknown or revoked (401)."""


class QuotaExceededError(AvatarError):
    """Out of credits (402), over the plan's concurrent sessions (403) or rate limited (429)."""


class NetworkError(AvatarError):
    """The farm could not be reached, timed out, or answered 5xx — after the retries."""


class RequestError(AvatarError):
    """The farm refused the request (validation, not found, conflict, payload too large)."""


class RenderError(AvatarError):
    """The render session ended FAILED on a worker (``code`` is the worker's failure code)."""


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_for(status: int, body: Any, headers: Any = None) -> AvatarError:
    """The SDK error an HTTP error response stands for (by the envelope's stable code, then status)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code, message = str(err.get("code", "HTTP_ERROR")), str(err.get("message", ""))
    else:
        code, message = f"HTTP_{status}", str(body)[:200] or f"HTTP {status}"
    kwargs: dict[str, Any] = {"code": code, "status": status, "retry_after_s": _retry_after(headers)}
    if code in AUTH_CODES or status == 401:
        return AuthenticationError(message, **kwargs)
    if code in QUOTA_CODES or status in (402, 429):
        return QuotaExceededError(message, **kwargs)
    if status >= 500:
        return NetworkError(message, **kwargs)
    return RequestError(message, **kwargs)


def is_retryable(error: AvatarError) -> bool:
    """Worth another try: no answer / 5xx, or a rate limit (which says when to come back)."""
    if isinstance(error, NetworkError):
        return True
    return isinstance(error, QuotaExceededError) and error.code == "RATE_LIMITED"
