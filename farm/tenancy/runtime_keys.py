"""Runtime keys: short-lived, scoped keys for ``livekit-plugins-bithuman`` agents.

The plugin copies its ``api_secret`` into LiveKit participant attributes that every member of the
room can read. A runtime key limits what leaks: minted by a full key (``POST
/v1/runtime-tokens/mint``), it can only start room sessions (``POST /v1/runtime-tokens/request``)
for the minting key's tenant, until ``expires_at``, optionally only in one room and for one agent,
with its own concurrency cap. Everywhere else it is refused with 403 ``KEY_SCOPE``; past its expiry
with 401 ``KEY_EXPIRED``.

A runtime key is stateless: ``farm_rt_<base64url JSON claims>.<base64url HMAC-SHA256>``, signed with
a per-farm key kept in Redis (``names.RUNTIME_KEY_SIGNING_KEY``, created on first use). Nothing is
stored per key, so minting costs no Redis write and keys vanish by themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from farm.infra.redis_conn import redis_errors
from farm.kernel import names
from farm.kernel.errors import KeyExpired, KeyOutOfScope, Unauthorized
from farm.tenancy.base import ApiKey

if TYPE_CHECKING:
    from redis import Redis

RUNTIME_KEY_PREFIX = "farm_rt_"
MIN_TTL_S = 60
MAX_TTL_S = 24 * 3600


def is_runtime_key(secret: str | None) -> bool:
    return bool(secret) and str(secret).startswith(RUNTIME_KEY_PREFIX)


@dataclass(frozen=True)
class RuntimeKeyScope:
    """What a runtime key allows: its claims."""

    tenant: str
    parent_key_id: str
    expires_at: float
    room: str | None = None
    agent_id: str | None = None
    max_concurrency: int | None = None

    def as_key(self) -> ApiKey:
        """The caller as the session code sees it (the tenant, the key's own concurrency cap)."""
        return ApiKey(self.parent_key_id, self.tenant, "runtime-key", 0.0, False, self.max_concurrency)

    def check(self, *, room: str, agent_id: str | None) -> None:
        """403 KEY_SCOPE when the request names another room or agent than the key allows."""
        if self.room is not None and room != self.room:
            raise KeyOutOfScope(f"this runtime key only starts sessions in room {self.room!r}")
        if self.agent_id is not None and agent_id != self.agent_id:
            raise KeyOutOfScope(f"this runtime key only starts sessions of agent {self.agent_id}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RuntimeKeySigner:
    """Mint and verify runtime keys with the farm's signing key."""

    def __init__(self, signing_key: Callable[[], bytes], *, clock: Callable[[], float] = time.time) -> None:
        self._signing_key = signing_key
        self._clock = clock

    def mint(
        self,
        parent: ApiKey,
        *,
        ttl_s: float,
        room: str | None = None,
        agent_id: str | None = None,
        max_concurrency: int | None = None,
    ) -> tuple[str, RuntimeKeyScope]:
        if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be within [{MIN_TTL_S}, {MAX_TTL_S}]")
        scope = RuntimeKeyScope(
            tenant=parent.tenant,
            parent_key_id=parent.key_id,
            expires_at=round(self._clock() + ttl_s, 3),
            room=room,
            agent_id=agent_id,
            max_concurrency=max_concurrency,
        )
        claims = {**asdict(scope), "jti": secrets.token_hex(8)}
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{RUNTIME_KEY_PREFIX}{body}.{self._sign(body)}", scope

    def verify(self, secret: str) -> RuntimeKeyScope:
        """The key's scope; 401 UNAUTHORIZED when forged or malformed, 401 KEY_EXPIRED when expired."""
        body, _, signature = secret.removeprefix(RUNTIME_KEY_PREFIX).partition(".")
        # bytes, not str: compare_digest refuses non-ASCII text, and a header can carry any latin-1
        expected = self._sign(body).encode()
        if not body or not signature or not hmac.compare_digest(signature.encode(), expected):
            raise Unauthorized("invalid runtime key")
        try:
            claims = json.loads(_unb64(body))
            claims.pop("jti", None)
            scope = RuntimeKeyScope(**claims)
        except (ValueError, TypeError) as exc:
            raise Unauthorized("invalid runtime key") from exc
        if scope.expires_at <= self._clock():
            raise KeyExpired("this runtime key has expired: mint a new one with POST /v1/runtime-tokens/mint")
        return scope

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._signing_key(), body.encode(), hashlib.sha256).digest())


def memory_signing_key() -> Callable[[], bytes]:
    """A random signing key held in this process (unit tests, single-process farms)."""
    key = secrets.token_bytes(32)
    return lambda: key


def redis_signing_key(client: Redis) -> Callable[[], bytes]:
    """The farm-wide signing key in Redis, created once (SET NX) and cached per process."""
    cached: list[bytes] = []
    lock = threading.Lock()

    @redis_errors
    def get() -> bytes:
        with lock:
            if not cached:
                client.set(names.RUNTIME_KEY_SIGNING_KEY, secrets.token_hex(32), nx=True)
                value = client.get(names.RUNTIME_KEY_SIGNING_KEY)
                if value is None:
                    raise Unauthorized("runtime keys are unavailable: no signing key")
                cached.append(bytes.fromhex(value.decode() if isinstance(value, bytes) else str(value)))
            return cached[0]

    return get
