"""Credits: per-tenant plans, monthly plan credits, top-ups, and exactly-once charges.

Every charge names a *scope* and *items*: a session's scope is ``session:<id>`` and its items are
minute indexes (``"0"`` is the first started minute); one-time charges use ``once:<tenant>`` with
items such as ``agent_build:<agent id>``. An item is charged at most once, whoever asks and however
often (re-queues, a crashed worker's successor, an API retry), because the ledger records it in the
same atomic step that moves the credits (a Lua script in Redis, a lock in memory).

Session minutes are **fenced**: the caller passes its lease's fencing token and a token older than the
session's latest claim is refused (STALE), so a worker that lost its lease can never charge.

Balance = the plan's monthly credits − plan credits used this period (``YYYY-MM``, UTC) + top-ups.
Plan credits are spent first. A new month is a new usage record: that is the monthly reset.
Unlimited plans are charged too (the usage shows them) but never refused.

The runtime's hook is ``meter_minute`` (one call per started minute of a live session).
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from farm.infra.redis_conn import redis_errors
from farm.kernel import names
from farm.kernel.domain import ModelKind, Session
from farm.kernel.errors import InsufficientBalance

from .plans import CREDITS_PER_MINUTE, DEFAULT_PLAN, PLANS, Plan, plan_named

if TYPE_CHECKING:
    from redis import Redis


class Outcome(enum.StrEnum):
    CHARGED = "charged"  # the credits moved now
    ALREADY = "already"  # every item was charged before: nothing moved (idempotent repeat)
    REFUSED = "refused"  # not enough credits: nothing moved
    STALE = "stale"  # the caller's fencing token is older than the session's latest claim


@dataclass(frozen=True, slots=True)
class Charge:
    outcome: Outcome
    credits: int  # credits moved by this call
    balance: int | None  # balance after the call (None: unlimited plan)


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """What to charge. ``monthly_credits`` None = unlimited; ``fence`` only for session minutes."""

    tenant: str
    period: str
    scope: str
    items: tuple[str, ...]
    credits_each: int
    kind: str  # usage bucket: essence | expression | agent_build | dynamics
    monthly_credits: int | None
    fence: int | None = None
    fence_scope: str | None = None  # the session id whose fence applies
    day: str = ""  # UTC day (YYYY-MM-DD) the charge counts towards in the per-day usage; "" = none


@dataclass(frozen=True, slots=True)
class Account:
    tenant: str
    plan: str
    topup: int


class Ledger(Protocol):
    def charge(self, request: ChargeRequest) -> Charge: ...

    def account(self, tenant: str) -> Account: ...

    def set_plan(self, tenant: str, plan: str) -> None: ...

    def add_topup(self, tenant: str, credits: int) -> None: ...

    def usage(self, tenant: str, period: str) -> dict[str, int]:
        """The period's counters: ``used``, ``credits:<kind>``, ``units:<kind>``."""
        ...

    def daily(self, tenant: str, days: Sequence[str]) -> dict[str, dict[str, int]]:
        """Each day's counters (``credits:<kind>``, ``units:<kind>``); days without use are absent."""
        ...

    def tenants(self) -> list[str]: ...


def period_of(now_s: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(now_s))


def day_of(now_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now_s))


def _next_period_start(now_s: float) -> float:
    t = time.gmtime(now_s)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(time.mktime((year, month, 1, 0, 0, 0, 0, 0, 0)) - time.timezone)


# ---------------------------------------------------------------- in memory
@dataclass
class MemoryLedger:
    """Ledger for unit tests: the Redis script's semantics under one lock."""

    _accounts: dict[str, Account] = field(default_factory=dict)
    _usage: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    _daily: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    _charged: dict[str, dict[str, int]] = field(default_factory=dict)
    _fences: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claimed(self, session_id: str, token: int) -> None:
        """Record a claim's fencing token (the Redis store's INCR does this for RedisLedger)."""
        with self._lock:
            self._fences[session_id] = max(token, self._fences.get(session_id, 0))

    def charge(self, request: ChargeRequest) -> Charge:
        with self._lock:
            if request.fence is not None and request.fence_scope is not None:
                if request.fence < self._fences.get(request.fence_scope, 0):
                    return Charge(Outcome.STALE, 0, None)
                self._fences[request.fence_scope] = request.fence
            done = self._charged.setdefault(request.scope, {})
            new = [i for i in request.items if i not in done]
            usage = self._usage.setdefault((request.tenant, request.period), {})
            account = self._accounts.get(request.tenant, Account(request.tenant, DEFAULT_PLAN, 0))
            balance = _balance(request.monthly_credits, usage.get("used", 0), account.topup)
            if not new:
                return Charge(Outcome.ALREADY, 0, balance)
            cost = len(new) * request.credits_each
            if balance is not None and balance < cost:
                return Charge(Outcome.REFUSED, 0, balance)
            from_plan = (
                cost
                if request.monthly_credits is None
                else min(cost, max(request.monthly_credits - usage.get("used", 0), 0))
            )
            usage["used"] = usage.get("used", 0) + from_plan
            usage[f"credits:{request.kind}"] = usage.get(f"credits:{request.kind}", 0) + cost
            usage[f"units:{request.kind}"] = usage.get(f"units:{request.kind}", 0) + len(new)
            if request.day:
                daily = self._daily.setdefault((request.tenant, request.day), {})
                daily[f"credits:{request.kind}"] = daily.get(f"credits:{request.kind}", 0) + cost
                daily[f"units:{request.kind}"] = daily.get(f"units:{request.kind}", 0) + len(new)
            self._accounts[request.tenant] = Account(
                request.tenant, account.plan, account.topup - (cost - from_plan)
            )
            done.update(dict.fromkeys(new, request.credits_each))
            return Charge(Outcome.CHARGED, cost, None if balance is None else balance - cost)

    def account(self, tenant: str) -> Account:
        with self._lock:
            return self._accounts.get(tenant, Account(tenant, DEFAULT_PLAN, 0))

    def set_plan(self, tenant: str, plan: str) -> None:
        plan_named(plan)
        with self._lock:
            old = self._accounts.get(tenant, Account(tenant, DEFAULT_PLAN, 0))
            self._accounts[tenant] = Account(tenant, plan, old.topup)

    def add_topup(self, tenant: str, credits: int) -> None:
        with self._lock:
            old = self._accounts.get(tenant, Account(tenant, DEFAULT_PLAN, 0))
            self._accounts[tenant] = Account(tenant, old.plan, old.topup + credits)

    def usage(self, tenant: str, period: str) -> dict[str, int]:
        with self._lock:
            return dict(self._usage.get((tenant, period), {}))

    def daily(self, tenant: str, days: Sequence[str]) -> dict[str, dict[str, int]]:
        with self._lock:
            return {d: dict(self._daily[(tenant, d)]) for d in days if (tenant, d) in self._daily}

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._accounts)


def _balance(monthly: int | None, used: int, topup: int) -> int | None:
    return None if monthly is None else max(monthly - used, 0) + topup


# ---------------------------------------------------------------- Redis
# KEYS: account, usage, meter, fence, day usage ('' none).  ARGV: credits_each, kind, monthly (-1 unlimited),
# fence ('' none), usage_ttl_s, meter_ttl_s (0 none), items...
_CHARGE_LUA = """
if ARGV[4] ~= '' then
  local latest = tonumber(redis.call('GET', KEYS[4]) or '0')
  if tonumber(ARGV[4]) < latest then return {'stale', 0, -1} end
end
local monthly = tonumber(ARGV[3])
local used = tonumber(redis.call('HGET', KEYS[2], 'used') or '0')
local topup = tonumber(redis.call('HGET', KEYS[1], 'topup') or '0')
local balance = -1
if monthly >= 0 then balance = math.max(monthly - used, 0) + topup end
local new = {}
for i = 7, #ARGV do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then table.insert(new, ARGV[i]) end
end
if #new == 0 then return {'already', 0, balance} end
local each = tonumber(ARGV[1])
local cost = #new * each
if monthly >= 0 and balance < cost then return {'refused', 0, balance} end
local from_plan = cost
if monthly >= 0 then from_plan = math.min(cost, math.max(monthly - used, 0)) end
redis.call('HINCRBY', KEYS[2], 'used', from_plan)
redis.call('HINCRBY', KEYS[2], 'credits:' .. ARGV[2], cost)
redis.call('HINCRBY', KEYS[2], 'units:' .. ARGV[2], #new)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
if KEYS[5] ~= '' then
  redis.call('HINCRBY', KEYS[5], 'credits:' .. ARGV[2], cost)
  redis.call('HINCRBY', KEYS[5], 'units:' .. ARGV[2], #new)
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[5]))
end
if cost > from_plan then redis.call('HINCRBY', KEYS[1], 'topup', from_plan - cost) end
for _, item in ipairs(new) do redis.call('HSET', KEYS[3], item, each) end
if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6])) end
if monthly >= 0 then balance = balance - cost end
return {'charged', cost, balance}
"""


class RedisLedger:
    """Ledger in Redis; each charge is one Lua script (check fence, skip charged items, move credits)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_CHARGE_LUA)

    def charge(self, request: ChargeRequest) -> Charge:
        fence_key = names.session_fence_key(request.fence_scope or "-")
        keys = [
            names.account_key(request.tenant),
            names.usage_key(request.tenant, request.period),
            names.meter_key(request.scope),
            fence_key,
            names.daily_usage_key(request.tenant, request.day) if request.day else "",
        ]
        meter_ttl = names.SESSION_RETENTION_S if request.scope.startswith("session:") else 0
        args: list[Any] = [
            request.credits_each,
            request.kind,
            -1 if request.monthly_credits is None else request.monthly_credits,
            "" if request.fence is None else request.fence,
            names.USAGE_RETENTION_S,
            meter_ttl,
            *request.items,
        ]
        outcome, credits, balance = self._script(keys=keys, args=args)
        outcome = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        return Charge(Outcome(outcome), int(credits), None if int(balance) < 0 else int(balance))

    def account(self, tenant: str) -> Account:
        raw = _decode(self._redis.hgetall(names.account_key(tenant)))
        return Account(tenant, raw.get("plan") or DEFAULT_PLAN, int(raw.get("topup") or 0))

    def set_plan(self, tenant: str, plan: str) -> None:
        plan_named(plan)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(names.account_key(tenant), "plan", plan)
        pipe.sadd(names.ACCOUNTS_INDEX_KEY, tenant)
        pipe.execute()

    def add_topup(self, tenant: str, credits: int) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hincrby(names.account_key(tenant), "topup", credits)
        pipe.sadd(names.ACCOUNTS_INDEX_KEY, tenant)
        pipe.execute()

    def usage(self, tenant: str, period: str) -> dict[str, int]:
        return {k: int(v) for k, v in _decode(self._redis.hgetall(names.usage_key(tenant, period))).items()}

    def daily(self, tenant: str, days: Sequence[str]) -> dict[str, dict[str, int]]:
        pipe = self._redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(names.daily_usage_key(tenant, day))
        raws = pipe.execute() if days else []
        return {
            d: {k: int(v) for k, v in _decode(raw).items()} for d, raw in zip(days, raws, strict=True) if raw
        }

    def tenants(self) -> list[str]:
        return sorted(_text(t) for t in self._redis.smembers(names.ACCOUNTS_INDEX_KEY))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw: Any) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in (raw or {}).items()}


# ---------------------------------------------------------------- the use-cases
@dataclass(frozen=True)
class Usage:
    """A tenant's standing this period (``GET /v1/usage``)."""

    tenant: str
    plan: Plan
    period: str
    resets_at: float
    balance: int | None
    plan_credits_left: int | None
    topup_credits: int
    counters: dict[str, int]

    def minutes_left(self, model: ModelKind) -> int | None:
        if self.balance is None:
            return None
        return self.balance // CREDITS_PER_MINUTE[model]


@dataclass
class Metering:
    """Plans and credits for the API and the session runtime, over one Ledger."""

    ledger: Ledger
    clock: Callable[[], float] = time.time

    def plan_of(self, tenant: str) -> Plan:
        return PLANS.get(self.ledger.account(tenant).plan, PLANS[DEFAULT_PLAN])

    def usage(self, tenant: str) -> Usage:
        now = self.clock()
        period = period_of(now)
        plan, account = self.plan_of(tenant), self.ledger.account(tenant)
        counters = self.ledger.usage(tenant, period)
        used = counters.get("used", 0)
        plan_left = None if plan.monthly_credits is None else max(plan.monthly_credits - used, 0)
        balance = None if plan_left is None else plan_left + account.topup
        return Usage(
            tenant, plan, period, _next_period_start(now), balance, plan_left, account.topup, counters
        )

    def daily(self, tenant: str, days: int) -> list[tuple[str, dict[str, int]]]:
        """The last ``days`` UTC days, oldest first, each with its counters (empty when unused)."""
        now = self.clock()
        wanted = [day_of(now - 86_400 * back) for back in range(days - 1, -1, -1)]
        found = self.ledger.daily(tenant, wanted)
        return [(d, found.get(d, {})) for d in wanted]

    def require_credits(self, tenant: str, credits: int, what: str) -> None:
        """INSUFFICIENT_BALANCE when the tenant cannot pay ``credits`` now (nothing is charged)."""
        balance = self.usage(tenant).balance
        if balance is not None and balance < credits:
            raise InsufficientBalance(
                f"{what} needs {credits} credits and the balance is {balance}; top up or change plan"
            )

    def charge_minutes(self, session: Session, minutes: Sequence[int], *, fence: int | None = None) -> Charge:
        """Charge the session's started minutes ``minutes`` (each once, ever) at its model's rate."""
        return self.ledger.charge(
            ChargeRequest(
                tenant=session.tenant,
                period=period_of(self.clock()),
                day=day_of(self.clock()),
                scope=f"session:{session.id}",
                items=tuple(str(m) for m in minutes),
                credits_each=CREDITS_PER_MINUTE[session.model],
                kind=session.model.value,
                monthly_credits=self.plan_of(session.tenant).monthly_credits,
                fence=fence,
                fence_scope=session.id if fence is not None else None,
            )
        )

    def prepay_video(self, session: Session, seconds: float) -> Charge:
        """A file render's minutes, rounded up, charged before it is queued; INSUFFICIENT_BALANCE if short."""
        minutes = max(1, math.ceil(seconds / 60.0))
        charge = self.charge_minutes(session, range(minutes))
        if charge.outcome is Outcome.REFUSED:
            cost = minutes * CREDITS_PER_MINUTE[session.model]
            raise InsufficientBalance(
                f"this {minutes}-minute video needs {cost} credits and the balance is {charge.balance}; "
                "top up or change plan"
            )
        return charge

    def charge_once(self, tenant: str, item: str, kind: str, credits: int) -> Charge:
        """A one-time charge (agent build, dynamics) for ``item``; INSUFFICIENT_BALANCE if short."""
        charge = self.ledger.charge(
            ChargeRequest(
                tenant=tenant,
                period=period_of(self.clock()),
                day=day_of(self.clock()),
                scope=f"once:{tenant}",
                items=(item,),
                credits_each=credits,
                kind=kind,
                monthly_credits=self.plan_of(tenant).monthly_credits,
            )
        )
        if charge.outcome is Outcome.REFUSED:
            raise InsufficientBalance(f"{kind} costs {credits} credits and the balance is {charge.balance}")
        return charge


class MinuteOutcome(enum.StrEnum):
    CONTINUE = "continue"  # charged now or before: keep streaming
    OUT_OF_CREDITS = "out_of_credits"  # end the session now, reason OUT_OF_CREDITS_REASON
    LEASE_LOST = "lease_lost"  # this holder's token is stale: stop publishing (as on LeaseLost)


OUT_OF_CREDITS_REASON = "out of credits"


@redis_errors  # a Redis outage is BackendUnavailable (the runner streams on and asks again)
def meter_minute(metering: Metering, session: Session, minute_index: int, fence_token: int) -> MinuteOutcome:
    """The runtime's hook: call at the start of every session minute (0 at STREAMING, 1 at +60 s …).

    Charges that minute once (a repeat after a re-queue or crash is free), fenced by the caller's
    lease token. A live session is never cut mid-minute: on OUT_OF_CREDITS the caller ends it at this
    boundary with ``OUT_OF_CREDITS_REASON``.
    """
    charge = metering.charge_minutes(session, [minute_index], fence=fence_token)
    if charge.outcome is Outcome.STALE:
        return MinuteOutcome.LEASE_LOST
    if charge.outcome is Outcome.REFUSED:
        return MinuteOutcome.OUT_OF_CREDITS
    return MinuteOutcome.CONTINUE


def redis_metering(url: str) -> Metering:
    """The production Metering for a process that has only a Redis URL (workers, CLI)."""
    from farm.infra.redis_conn import connect

    return Metering(RedisLedger(connect(url)))
