"""The one Redis client factory, and translation of Redis errors into ``BackendUnavailable``.

Every Redis client of the farm (stores, registry, metering, pub/sub of dynamics and speech) is built
by ``connect``; Celery opens its own connections from the same URL (``tasks.app.celery_config``).
Clients use ``decode_responses=True``: every value the farm stores is text (JSON documents, ids,
counters), so callers get ``str`` back and never juggle bytes.

Two URL forms:

* ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``): one server.
* ``redis+sentinel://[:password@]host:port[,host:port...]/db?master=NAME``: Redis Sentinel. The
  client asks the sentinels for the current primary of ``NAME`` and asks again after a failover
  (redis-py's ``Sentinel.master_for``); ``password`` authenticates to the sentinels and the data
  nodes alike. ``Settings`` composes this URL from ``redis_sentinels`` and
  ``redis_sentinel_master`` (``sentinel_url``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from farm.kernel.errors import BackendUnavailable
from farm.kernel.settings import SENTINEL_SCHEME

P = ParamSpec("P")
R = TypeVar("R")

_UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.ReadOnlyError,
    redis.sentinel.MasterNotFoundError,  # a ConnectionError; named for the failover window
)
UNAVAILABLE_ERRORS = (*_UNAVAILABLE, redis.exceptions.OutOfMemoryError)  # type: ignore[attr-defined]  # stubs predate it
"""Redis errors that mean "the backend is down, failing over or full", never a bug: 503
BACKEND_UNAVAILABLE. The API maps them once, at the app (``farm.api.errors``), so no route can turn an
outage into a 500."""
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (*_UNAVAILABLE, OSError)
"""Errors a long-lived Redis user (a subscriber thread, a heartbeat) waits out and retries."""

DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    """A ``redis+sentinel://`` URL, parsed."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget | None:
    """The sentinel target of ``url``, or None for a plain ``redis://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    userinfo, _, hosts = parts.netloc.rpartition("@")
    password = (unquote(userinfo.partition(":")[2]) or None) if userinfo else None
    sentinels = []
    for item in filter(None, hosts.split(",")):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
        sentinels.append((host, int(port or DEFAULT_SENTINEL_PORT)))
    master = parse_qs(parts.query).get("master", [""])[0]
    if not sentinels or not master:
        raise ValueError(f"{SENTINEL_SCHEME} URLs name sentinels and ?master=NAME")
    db = int(parts.path.strip("/") or 0)
    return SentinelTarget(tuple(sentinels), master, db, password)


def connect(
    url: str,
    *,
    socket_timeout_s: float = 5.0,
    health_check_interval_s: int = 30,
    retries: int | None = None,
    client_name: str | None = None,
    socket_keepalive: bool = False,
    retry_on_timeout: bool = True,
) -> redis.Redis:
    """A client for ``url`` (either form, see the module docstring); lazily connected, so this never
    fails fast. ``retries=0`` turns redis-py's own retry off (a subscriber that wants to see every
    dropped connection); None keeps redis-py's default. ``retry_on_timeout=False`` bounds a call on
    a hung Redis to one ``socket_timeout_s`` (with it, redis-py waits that long twice)."""
    kwargs: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_timeout_s,
        "health_check_interval": health_check_interval_s,
        "retry_on_timeout": retry_on_timeout,
        "client_name": client_name,
        "socket_keepalive": socket_keepalive,
    }
    if retries is not None:
        kwargs["retry"] = Retry(NoBackoff(), retries)
    target = parse_sentinel_url(url)
    if target is None:
        return redis.Redis.from_url(url, **kwargs)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_timeout_s,
    }
    if target.password:
        sentinel_kwargs["password"] = target.password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    master = sentinel.master_for(
        target.master, redis_class=redis.Redis, db=target.db, password=target.password, **kwargs
    )
    return master


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
        raise ValueError(
            "farm stores need a client with decode_responses=True (use farm.infra.redis_conn.connect)"
        )
    return client


def ping(client: redis.Redis) -> bool:
    """True when the server answers; never raises (readiness probes)."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
