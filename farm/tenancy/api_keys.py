"""API keys: secrets are shown once, stored only as SHA-256 hashes, compared in constant time.

A key belongs to a tenant; every record the API creates with it is the tenant's. ``farm keys create``
prints the secret once; nothing can print it again. Two implementations of ``KeyStore``:
``RedisKeyStore`` (production) and ``MemoryKeyStore`` (unit tests).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from farm.infra.redis_conn import redis_errors
from farm.kernel import names
from farm.kernel.errors import NotFound, Unauthorized
from farm.tenancy.base import ApiKey, KeyStore

if TYPE_CHECKING:
    from redis import Redis

SECRET_PREFIX = "farm_"


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a secret: what the stores keep instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh secret (256 bits of randomness, URL-safe)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """A public, non-secret identifier of a key (for listing and revoking)."""
    return "key_" + secrets.token_hex(6)


def _unauthorized() -> Unauthorized:
    return Unauthorized("missing, unknown or revoked api-secret")


class MemoryKeyStore:
    """In-memory KeyStore for unit tests; same semantics as RedisKeyStore."""

    def __init__(self) -> None:
        self._by_hash: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def create(self, tenant: str, name: str, concurrency_limit: int | None = None) -> tuple[ApiKey, str]:
        secret = new_secret()
        key = ApiKey(new_key_id(), tenant, name, time.time(), False, concurrency_limit)
        with self._lock:
            self._by_hash[hash_secret(secret)] = key
        return key, secret

    def authenticate(self, secret: str) -> ApiKey:
        if not secret:
            raise _unauthorized()
        wanted = hash_secret(secret)
        found: ApiKey | None = None
        with self._lock:
            for stored_hash, key in self._by_hash.items():
                if hmac.compare_digest(stored_hash, wanted):
                    found = key
        if found is None or found.revoked:
            raise _unauthorized()
        return found

    def list(self) -> list[ApiKey]:
        with self._lock:
            return sorted(self._by_hash.values(), key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> None:
        with self._lock:
            for stored_hash, key in self._by_hash.items():
                if key.key_id == key_id:
                    self._by_hash[stored_hash] = _revoked(key)
                    return
        raise NotFound(f"no key {key_id}")


def _revoked(key: ApiKey) -> ApiKey:
    return ApiKey(key.key_id, key.tenant, key.name, key.created_at, True, key.concurrency_limit)


class RedisKeyStore:
    """KeyStore in Redis: HASH ``farm:apikey:<sha256>`` plus the index HASH ``farm:apikeys``.

    Every method turns a Redis outage into BackendUnavailable (503), authentication included.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @redis_errors
    def create(self, tenant: str, name: str, concurrency_limit: int | None = None) -> tuple[ApiKey, str]:
        secret = new_secret()
        digest = hash_secret(secret)
        key = ApiKey(new_key_id(), tenant, name, time.time(), False, concurrency_limit)
        record: dict[str | bytes, bytes | float | int | str] = {
            "key_id": key.key_id,
            "tenant": tenant,
            "name": name,
            "created_at": repr(key.created_at),
            "revoked": "0",
            "secret_hash": digest,
            "concurrency_limit": "" if concurrency_limit is None else str(concurrency_limit),
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(names.api_key_key(digest), mapping=record)
        pipe.hset(names.API_KEYS_INDEX_KEY, key.key_id, digest)
        pipe.execute()
        return key, secret

    @redis_errors
    def authenticate(self, secret: str) -> ApiKey:
        if not secret:
            raise _unauthorized()
        wanted = hash_secret(secret)
        record = _decode(self._redis.hgetall(names.api_key_key(wanted)))
        # The lookup is by hash; the stored hash is compared again in constant time.
        if not record or not hmac.compare_digest(record.get("secret_hash", ""), wanted):
            raise _unauthorized()
        key = _from_record(record)
        if key.revoked:
            raise _unauthorized()
        return key

    @redis_errors
    def list(self) -> list[ApiKey]:
        digests = _decode(self._redis.hgetall(names.API_KEYS_INDEX_KEY))
        pipe = self._redis.pipeline(transaction=False)
        for digest in digests.values():
            pipe.hgetall(names.api_key_key(digest))
        keys = [_from_record(_decode(raw)) for raw in pipe.execute() if raw]
        return sorted(keys, key=lambda k: k.created_at)

    @redis_errors
    def revoke(self, key_id: str) -> None:
        digest = self._redis.hget(names.API_KEYS_INDEX_KEY, key_id)
        if digest is None:
            raise NotFound(f"no key {key_id}")
        self._redis.hset(names.api_key_key(_text(digest)), "revoked", "1")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw: Any) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in (raw or {}).items()}


def _from_record(record: dict[str, str]) -> ApiKey:
    limit = record.get("concurrency_limit") or ""
    return ApiKey(
        key_id=record["key_id"],
        tenant=record["tenant"],
        name=record.get("name", ""),
        created_at=float(record.get("created_at", "0")),
        revoked=record.get("revoked") == "1",
        concurrency_limit=int(limit) if limit else None,
    )


# ---------------------------------------------------------------- a tenant's own keys (the API)
def tenant_keys(store: KeyStore, tenant: str) -> list[ApiKey]:
    """The tenant's keys, oldest first (revoked ones included, so the studio can show them)."""
    return [k for k in store.list() if k.tenant == tenant]


def revoke_tenant_key(store: KeyStore, tenant: str, key_id: str) -> ApiKey:
    """Revoke one of the tenant's keys; another tenant's key is NotFound (404, never 403)."""
    own = next((k for k in tenant_keys(store, tenant) if k.key_id == key_id), None)
    if own is None:
        raise NotFound(f"no key {key_id}")
    store.revoke(key_id)
    return _revoked(own)
