"""``Idempotency-Key`` on generate-type POSTs: the first response is kept and replayed.

A POST with the header stores its response body (JSON) under (tenant, key) for
``names.IDEMPOTENT_RESPONSE_TTL_S``; a later POST with the same key gets that body again with
``Idempotency-Replayed: true`` and does no work. Two requests racing with one key may both run
(the first to finish is kept): the store is a replay cache, not a lock.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Protocol

from starlette.responses import Response

from farm.infra.redis_conn import redis_errors
from farm.kernel import names

if TYPE_CHECKING:
    from redis import Redis

HEADER: str = "Idempotency-Key"
REPLAYED_HEADER: str = "Idempotency-Replayed"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class ReplayStore(Protocol):
    def get(self, tenant: str, scope: str, key: str) -> str | None:
        """The stored response body for this key, or None."""
        ...

    def put(self, tenant: str, scope: str, key: str, body: str) -> None:
        """Keep ``body`` unless one is already kept (first wins)."""
        ...


class MemoryReplayStore:
    """In-memory ReplayStore for unit tests (no TTL)."""

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, scope: str, key: str) -> str | None:
        with self._lock:
            return self._bodies.get((tenant, scope, _digest(key)))

    def put(self, tenant: str, scope: str, key: str, body: str) -> None:
        with self._lock:
            self._bodies.setdefault((tenant, scope, _digest(key)), body)


class RedisReplayStore:
    """ReplayStore in Redis: STRING ``names.idempotent_response_key`` set NX with a TTL."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @redis_errors
    def get(self, tenant: str, scope: str, key: str) -> str | None:
        raw = self._redis.get(names.idempotent_response_key(tenant, scope, _digest(key)))
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    @redis_errors
    def put(self, tenant: str, scope: str, key: str, body: str) -> None:
        self._redis.set(
            names.idempotent_response_key(tenant, scope, _digest(key)),
            body,
            nx=True,
            ex=names.IDEMPOTENT_RESPONSE_TTL_S,
        )


def replay(store: ReplayStore, tenant: str, scope: str, key: str | None, status: int) -> Response | None:
    """The kept response for ``key`` (with ``Idempotency-Replayed: true``), or None to do the work."""
    if not key:
        return None
    body = store.get(tenant, scope, key)
    if body is None:
        return None
    return Response(
        body, status_code=status, media_type="application/json", headers={REPLAYED_HEADER: "true"}
    )


def remember(
    store: ReplayStore, tenant: str, scope: str, key: str | None, *, body: str, status: int
) -> Response:
    """Keep ``body`` under ``key`` (when given) and answer it."""
    if key:
        store.put(tenant, scope, key, body)
    return Response(body, status_code=status, media_type="application/json")
