"""Rate limits: token buckets per tenant (shared by its keys) and cost tier; failed auth per address.

A plan gives each tier N requests per minute (``plans.PLANS``): a bucket of N tokens refilled at
N/60 per second. Every authenticated ``/v1``/``/v2`` request takes one token of its route's tier
(``tier_of``); an empty bucket is ``429 RATE_LIMITED`` with ``Retry-After`` (whole seconds until a
token is back). Responses carry ``X-RateLimit-Limit`` (N), ``-Remaining`` (whole tokens left) and
``-Reset`` (seconds until the bucket is full again). Unlimited plans (``custom``) take no token and
get no headers. Not limited: ``POST /v1/validate``, the runtime-token routes (concurrency governs
them), health and metrics. Failed authentication takes a token of the client address's
``auth_failed`` bucket (``plans.FAILED_AUTH_PER_MIN``); when it is empty the answer is 429, not 401.

``RedisRateLimiter`` keeps buckets in Redis (one Lua script per take, so every API replica shares
them); ``MemoryRateLimiter`` is its in-process twin for unit tests and single-process use.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from fastapi import FastAPI, Request, Response

from farm.infra.redis_conn import redis_errors
from farm.kernel import names
from farm.kernel.errors import RateLimited
from farm.tenancy.plans import Tier

if TYPE_CHECKING:
    from redis import Redis

AUTH_FAILED_TIER = "auth_failed"
_GENERATE_ROUTES = frozenset(
    {
        ("POST", "/v1/video/generate"),
        ("POST", "/v1/agents"),
        ("POST", "/v1/agent/generate"),
        ("POST", "/v1/dynamics/generate"),
    }
)
_BUCKET_TTL_S = 120


def tier_of(method: str, route_path: str) -> Tier:
    """The cost tier of a route: generation, other writes (TTS included), reads."""
    if (method, route_path) in _GENERATE_ROUTES:
        return Tier.GENERATE
    return Tier.READ if method in ("GET", "HEAD") else Tier.WRITE


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # until the bucket is full
    retry_after_s: int  # until one token is back (0 when allowed)

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


class RateLimiter(Protocol):
    def take(self, subject: str, tier: str, per_min: int) -> Decision:
        """Take one token from ``subject``'s ``tier`` bucket of ``per_min`` per minute."""
        ...


def _decide(tokens: float, per_min: int, allowed: bool) -> Decision:
    rate = per_min / 60.0
    return Decision(
        allowed=allowed,
        limit=per_min,
        remaining=max(int(tokens), 0),
        reset_s=math.ceil((per_min - tokens) / rate) if tokens < per_min else 0,
        retry_after_s=0 if allowed else max(1, math.ceil((1 - tokens) / rate)),
    )


@dataclass
class MemoryRateLimiter:
    """Token buckets in this process (unit tests, single-process farms)."""

    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, subject: str, tier: str, per_min: int) -> Decision:
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get((subject, tier), (float(per_min), now))
            tokens = min(float(per_min), tokens + (now - at) * per_min / 60.0)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[(subject, tier)] = (tokens, now)
        return _decide(tokens, per_min, allowed)


# KEYS: bucket. ARGV: per_min, now_s, ttl_s. Returns {allowed (0/1), tokens as string}.
_TAKE_LUA = """
local per_min = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or per_min
local at = tonumber(state[2]) or now
tokens = math.min(per_min, tokens + math.max(now - at, 0) * per_min / 60.0)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    """Token buckets in Redis (``names.rate_bucket_key``), shared by every API replica."""

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._script = redis.register_script(_TAKE_LUA)
        self._clock = clock

    @redis_errors
    def take(self, subject: str, tier: str, per_min: int) -> Decision:
        key = names.rate_bucket_key(subject, tier)
        allowed, tokens = self._script(keys=[key], args=[per_min, repr(self._clock()), _BUCKET_TTL_S])
        return _decide(float(tokens), per_min, bool(int(allowed)))


def limit_request(request: Request, limiter: RateLimiter, subject: str, tier: str, per_min: int) -> None:
    """Take a token for this request; remember the headers; RATE_LIMITED when the bucket is empty."""
    decision = limiter.take(subject, tier, per_min)
    request.state.rate_headers = decision.headers()
    if not decision.allowed:
        raise RateLimited(
            f"over {per_min} {tier} requests per minute; retry in {decision.retry_after_s} s",
            retry_after_s=decision.retry_after_s,
        )


def install_rate_headers(app: FastAPI) -> None:
    """Copy the request's rate-limit headers (set by ``limit_request``) onto its response."""

    @app.middleware("http")
    async def _rate_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in getattr(request.state, "rate_headers", {}).items():
            response.headers[name] = value
        return response
