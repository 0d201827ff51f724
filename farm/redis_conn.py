"""Redis client factory and translation of Redis errors into ``farm.errors.BackendUnavailable``.

Clients use ``decode_responses=True``: every value the farm stores is text (JSON documents, ids,
counters), so callers get ``str`` back and never juggle bytes. (Celery opens its own connections.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import redis

from farm.errors import BackendUnavailable

P = ParamSpec("P")
R = TypeVar("R")

_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ReadOnlyError)
UNAVAILABLE_ERRORS = (*_UNAVAILABLE, redis.exceptions.OutOfMemoryError)  # type: ignore[attr-defined]  # stubs predate it
"""Redis errors that mean "the backend is down, failing over or full", never a bug: 503
BACKEND_UNAVAILABLE. The API maps them once, at the app (``farm.api.errors``), so no route can turn an
outage into a 500."""


def connect(url: str, *, socket_timeout_s: float = 5.0, health_check_interval_s: int = 30) -> redis.Redis:
    """A client for ``url`` (``redis://host:port/db``); lazily connected, so this never fails fast."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=health_check_interval_s,
        retry_on_timeout=True,
    )


@contextmanager
def translate_errors(what: str = "redis") -> Iterator[None]:
    """Re-raise connection-level Redis errors as BackendUnavailable (503, retryable)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise BackendUnavailable(f"{what} is unavailable: {type(exc).__name__}") from exc


def redis_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of ``translate_errors`` for store methods."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translate_errors():
            return fn(*args, **kwargs)

    return wrapper


def require_text_client(client: redis.Redis) -> redis.Redis:
    """Refuse a client that returns bytes: the farm's stores compare and build keys from ``str``."""
    if not client.get_connection_kwargs().get("decode_responses"):
        raise ValueError("farm stores need a client with decode_responses=True (use farm.redis_conn.connect)")
    return client


def ping(client: redis.Redis) -> bool:
    """True when the server answers; never raises (readiness probes)."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
