"""RedisSessionStore: the production SessionStore.

Keys (all from ``farm.kernel.names``): the session JSON, its lease (``"<worker_id>|<token>"`` with a TTL),
its fencing counter, its stop flag, the live ZSET, the warm-pending ZSET (the rescuer's index), the
tenant's ZSET and live SET, and the idempotency key. Transitions and claims are optimistic
transactions (WATCH/MULTI) over the session key and, when a lease is involved, the lease key, so a
concurrent writer forces a retry instead of a lost update. Lease renew/release are compare-and-set
Lua scripts on the lease value (renew_and_check_stop also reads the stop flag).
"""

from __future__ import annotations

from typing import Any, cast

import redis
from redis.client import Pipeline

from farm.infra.redis_conn import redis_errors, require_text_client
from farm.kernel import names
from farm.kernel.contracts import StopMessage
from farm.kernel.domain import TERMINAL_STATES, Session, SessionState
from farm.kernel.errors import ConcurrencyLimit, IllegalTransition, LeaseLost, NotFound
from farm.sessions.base import Lease, LeaseScan
from farm.sessions.transitions import apply_claim, apply_transition, check_expected, initial

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RENEW_STOP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
return 1
"""
_RELEASE = """
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_MAX_RETRIES = 50
_INDEX_SLACK_S = 24 * 3600.0


def _lease_value(worker_id: str, token: int) -> str:
    return f"{worker_id}|{token}"


def _parse_lease(session_id: str, value: str | None) -> Lease | None:
    if not value:
        return None
    worker_id, _, token = value.rpartition("|")
    try:
        return Lease(session_id=session_id, worker_id=worker_id, token=int(token))
    except ValueError:
        return None


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisSessionStore:
    """SessionStore over Redis. ``idempotency_ttl_s`` should be settings.max_session_s."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        idempotency_ttl_s: float = 3600.0,
        retention_s: float = names.SESSION_RETENTION_S,
    ) -> None:
        self._r = require_text_client(client)
        self._idem_ttl_s = idempotency_ttl_s
        self._retention_s = retention_s
        # A record lives at most: queued and run (bounded by the queue deadline and max_session_s,
        # per attempt) + retention after it ends. A day of slack covers the first part.
        self._index_span_s = retention_s + idempotency_ttl_s + _INDEX_SLACK_S
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._renew_stop = client.register_script(_RENEW_STOP)

    # ------------------------------------------------------------ records
    @redis_errors
    def create(
        self, session: Session, *, idempotency_scope: str | None = None, max_live: int | None = None
    ) -> tuple[Session, bool]:
        stored = initial(session)
        idem = names.idempotency_key(session.tenant, idempotency_scope) if idempotency_scope else None
        live_key = names.tenant_live_key(session.tenant)
        with self._r.pipeline() as pipe:
            for _ in range(_MAX_RETRIES):
                try:
                    if idem is not None:
                        pipe.watch(idem)
                        held = cast("str | None", pipe.get(idem))
                        existing = self._load(pipe, held) if held else None
                        if existing is not None and existing.live:
                            pipe.reset()
                            return existing, False
                    if max_live is not None:
                        pipe.watch(live_key)  # a racing create changes it: WatchError, then recount
                        if int(cast("int", pipe.scard(live_key))) >= max_live:
                            pipe.reset()
                            raise ConcurrencyLimit(
                                f"the tenant already has {max_live} live sessions (its limit)"
                            )
                    pipe.multi()
                    if idem is not None:
                        pipe.set(idem, session.id, px=_ms(self._idem_ttl_s))
                    self._write(pipe, stored, created=True)
                    pipe.execute()
                    return stored, True
                except redis.WatchError:
                    continue
        raise redis.ConnectionError("create kept conflicting")  # pragma: no cover

    @redis_errors
    def get(self, session_id: str) -> Session:
        session = self._load(self._r, session_id)
        if session is None:
            raise NotFound(f"session {session_id} not found")
        return session

    def get_for_tenant(self, tenant: str, session_id: str) -> Session:
        session = self.get(session_id)
        if session.tenant != tenant:
            raise NotFound(f"session {session_id} not found")
        return session

    @redis_errors
    def recent(self, limit: int) -> list[Session]:
        ids: list[str] = self._r.zrevrange(names.RECENT_SESSIONS_KEY, 0, max(limit, 1) - 1)
        raws: list[str | None] = self._r.mget([names.session_key(i) for i in ids]) if ids else []
        return [Session.model_validate_json(raw) for raw in raws if raw is not None]

    @redis_errors
    def list_for_tenant(self, tenant: str, *, limit: int = 50, offset: int = 0) -> list[Session]:
        ids: list[str] = self._r.zrevrange(names.tenant_sessions_key(tenant), offset, offset + limit - 1)
        if not ids:
            return []
        raws: list[str | None] = self._r.mget([names.session_key(i) for i in ids])
        expired = [sid for sid, raw in zip(ids, raws, strict=True) if raw is None]
        if expired:  # records past their retention: drop them from the index too
            self._r.zrem(names.tenant_sessions_key(tenant), *expired)
        return [Session.model_validate_json(raw) for raw in raws if raw is not None]

    @redis_errors
    def count_live(self, tenant: str) -> int:
        return int(self._r.scard(names.tenant_live_key(tenant)))

    @redis_errors
    def live_for_tenant(self, tenant: str) -> list[Session]:
        ids = sorted(str(i) for i in self._r.smembers(names.tenant_live_key(tenant)))
        raws = self._r.mget([names.session_key(i) for i in ids]) if ids else []
        return [s for s in (Session.model_validate_json(raw) for raw in raws if raw is not None) if s.live]

    # ------------------------------------------------------------ state machine
    @redis_errors
    def transition(
        self,
        session_id: str,
        target: SessionState,
        *,
        reason: str | None = None,
        lease: Lease | None = None,
        expect: SessionState | None = None,
        unleased: bool = False,
        **fields: Any,
    ) -> Session:
        key = names.session_key(session_id)
        lease_key = names.session_lease_key(session_id)
        with self._r.pipeline() as pipe:
            for _ in range(_MAX_RETRIES):
                try:
                    pipe.watch(key, lease_key)
                    if unleased and pipe.exists(lease_key):
                        pipe.reset()
                        raise IllegalTransition(f"session {session_id} is leased again")
                    updated = self._next(
                        pipe, session_id, target, reason=reason, lease=lease, expect=expect, fields=fields
                    )
                    pipe.multi()
                    self._write(pipe, updated)
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    continue
        raise redis.ConnectionError("transition kept conflicting")  # pragma: no cover

    @redis_errors
    def claim(self, session_id: str, worker_id: str, ttl_s: float) -> Lease | None:
        key = names.session_key(session_id)
        lease_key = names.session_lease_key(session_id)
        fence_key = names.session_fence_key(session_id)
        with self._r.pipeline() as pipe:
            for _ in range(_MAX_RETRIES):
                try:
                    pipe.watch(key, lease_key, fence_key)
                    current = self._load(pipe, session_id)
                    if current is None:
                        raise NotFound(f"session {session_id} not found")
                    if current.state is not SessionState.QUEUED or pipe.exists(lease_key):
                        pipe.reset()
                        return None
                    # The fence is read under WATCH and written in the transaction, so a claim that
                    # loses a race burns no token: the fence counts the holders a session has had.
                    token = int(cast("str | None", pipe.get(fence_key)) or 0) + 1
                    claimed = apply_claim(current, worker_id)
                    pipe.multi()
                    pipe.set(fence_key, token, keepttl=True)
                    pipe.set(lease_key, _lease_value(worker_id, token), px=_ms(ttl_s))
                    pipe.sadd(names.worker_leases_key(worker_id), session_id)
                    pipe.sadd(names.LEASE_HOLDERS_KEY, worker_id)
                    self._write(pipe, claimed)
                    pipe.execute()
                    return Lease(session_id=session_id, worker_id=worker_id, token=token)
                except redis.WatchError:
                    continue
        raise redis.ConnectionError("claim kept conflicting")  # pragma: no cover

    @redis_errors
    def renew(self, lease: Lease, ttl_s: float) -> bool:
        key = names.session_lease_key(lease.session_id)
        return bool(self._renew(keys=[key], args=[_lease_value(lease.worker_id, lease.token), _ms(ttl_s)]))

    @redis_errors
    def renew_and_check_stop(self, lease: Lease, ttl_s: float) -> tuple[bool, bool]:
        """Renew the lease and read the stop flag in ONE round trip: (still held, stop requested).

        The runner renews every ``lease_renew_s`` anyway; checking the flag there replaces a separate
        ``stop_requested`` poll (4×/s per session) at no extra command: O(1) Redis per live session.
        """
        keys = [names.session_lease_key(lease.session_id), names.session_stop_key(lease.session_id)]
        reply = int(
            self._renew_stop(keys=keys, args=[_lease_value(lease.worker_id, lease.token), _ms(ttl_s)])
        )
        return reply > 0, reply == 2

    @redis_errors
    def release(self, lease: Lease) -> None:
        self._compare_and_delete(lease)

    def _compare_and_delete(self, lease: Lease) -> bool:
        keys = [names.session_lease_key(lease.session_id), names.worker_leases_key(lease.worker_id)]
        args = [_lease_value(lease.worker_id, lease.token), lease.session_id]
        return bool(self._release(keys=keys, args=args))

    @redis_errors
    def request_stop(self, session_id: str) -> None:
        """Set the durable stop flag and publish a StopMessage so the holder stops at its next frame."""
        self.get(session_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.set(names.session_stop_key(session_id), "1", ex=int(self._retention_s))
        pipe.publish(names.STOP_TOPIC, StopMessage(session_id=session_id).model_dump_json())
        pipe.execute()

    @redis_errors
    def stop_requested(self, session_id: str) -> bool:
        return bool(self._r.exists(names.session_stop_key(session_id)))

    def orphaned(self) -> list[str]:
        return self.scan_leases().orphans

    @redis_errors
    def scan_leases(self) -> LeaseScan:
        """Reads the lease value (a few bytes) of every live session (the live index, never SCAN)
        and the record only of those without a lease (QUEUED ones, orphans): the pass costs O(1)
        small replies per live session, not its whole JSON."""
        ids: list[str] = self._r.zrange(names.LIVE_SESSIONS_KEY, 0, -1)
        scan = LeaseScan(orphans=[], held=[])
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            pipe = self._r.pipeline(transaction=False)
            for sid in batch:
                pipe.get(names.session_lease_key(sid))
            unleased: list[str] = []
            for sid, value in zip(batch, pipe.execute(), strict=True):
                lease = _parse_lease(sid, value)
                if lease is None:
                    unleased.append(sid)
                else:
                    scan.held.append(lease)
            if not unleased:
                continue
            raws: list[str | None] = self._r.mget([names.session_key(sid) for sid in unleased])
            for sid, raw in zip(unleased, raws, strict=True):
                if raw is None:
                    continue
                state = Session.model_validate_json(raw).state
                if state is not SessionState.QUEUED and state not in TERMINAL_STATES:
                    scan.orphans.append(sid)
        return scan

    @redis_errors
    def revoke(self, lease: Lease) -> bool:
        return self._compare_and_delete(lease)

    @redis_errors
    def lease_holders(self) -> set[str]:
        return {str(w) for w in self._r.smembers(names.LEASE_HOLDERS_KEY)}

    @redis_errors
    def leases_of(self, worker_id: str) -> list[Lease]:
        ids = sorted(str(s) for s in self._r.smembers(names.worker_leases_key(worker_id)))
        if not ids:
            return []
        values: list[str | None] = self._r.mget([names.session_lease_key(sid) for sid in ids])
        leases = [_parse_lease(sid, value) for sid, value in zip(ids, values, strict=True)]
        held = [lease for lease in leases if lease is not None and lease.worker_id == worker_id]
        stale = set(ids) - {lease.session_id for lease in held}  # expired, or taken over since
        if stale:
            self._r.srem(names.worker_leases_key(worker_id), *stale)
        return held

    @redis_errors
    def forget_holder(self, worker_id: str) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(names.worker_leases_key(worker_id))
        pipe.srem(names.LEASE_HOLDERS_KEY, worker_id)
        pipe.execute()

    @redis_errors
    def queued_before(self, at: float) -> list[tuple[str, float]]:
        rows: list[tuple[str, float]] = self._r.zrangebyscore(
            names.QUEUED_SESSIONS_KEY, "-inf", at, withscores=True
        )
        return [(str(sid), float(score)) for sid, score in rows]

    # ------------------------------------------------------------ helpers
    def _next(
        self,
        pipe: Pipeline,
        session_id: str,
        target: SessionState,
        *,
        reason: str | None,
        lease: Lease | None,
        expect: SessionState | None,
        fields: dict[str, Any],
    ) -> Session:
        """Read (under WATCH) and compute the next version of a session, checking the lease."""
        current = self._load(pipe, session_id)
        if current is None:
            raise NotFound(f"session {session_id} not found")
        check_expected(current, expect)
        if lease is None:
            return apply_transition(current, target, reason=reason, fields=fields)
        if pipe.get(names.session_lease_key(session_id)) != _lease_value(lease.worker_id, lease.token):
            raise LeaseLost(f"lease on session {session_id} was lost", token=lease.token)
        return apply_transition(current, target, reason=reason, worker_id=lease.worker_id, fields=fields)

    @staticmethod
    def _load(client: redis.Redis | Pipeline, session_id: str) -> Session | None:
        raw = cast("str | None", client.get(names.session_key(session_id)))
        return None if raw is None else Session.model_validate_json(raw)

    def _write(self, pipe: Pipeline, session: Session, *, created: bool = False) -> None:
        """Queue the writes that store ``session`` and keep the indexes in step (inside MULTI)."""
        key = names.session_key(session.id)
        if created:  # the tenant's index: trimmed past the longest a record can live, and expiring
            index = names.tenant_sessions_key(session.tenant)
            pipe.zadd(index, {session.id: session.created_at})
            pipe.zremrangebyscore(index, "-inf", f"({session.created_at - self._index_span_s}")
            pipe.expire(index, int(self._index_span_s))
        if session.state in TERMINAL_STATES:
            retention = int(self._retention_s)
            pipe.set(key, session.model_dump_json(), ex=retention)
            pipe.zrem(names.LIVE_SESSIONS_KEY, session.id)
            pipe.srem(names.tenant_live_key(session.tenant), session.id)
            pipe.expire(names.session_fence_key(session.id), retention)
            pipe.zadd(names.RECENT_SESSIONS_KEY, {session.id: session.updated_at})
            pipe.zremrangebyrank(names.RECENT_SESSIONS_KEY, 0, -names.RECENT_SESSIONS_MAX - 1)
        else:
            pipe.set(key, session.model_dump_json())
            pipe.zadd(names.LIVE_SESSIONS_KEY, {session.id: session.created_at})
            pipe.sadd(names.tenant_live_key(session.tenant), session.id)
        if session.state is SessionState.QUEUED:
            pipe.zadd(names.QUEUED_SESSIONS_KEY, {session.id: session.updated_at})
        else:
            pipe.zrem(names.QUEUED_SESSIONS_KEY, session.id)
        if session.state is SessionState.QUEUED and session.routed_to is not None and not session.attempts:
            pipe.zadd(names.WARM_PENDING_KEY, {session.id: session.updated_at})
        else:
            pipe.zrem(names.WARM_PENDING_KEY, session.id)
