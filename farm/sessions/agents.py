"""Agents (registered avatars, addressed by an agent code) and the state of their pack builds.

Agent codes follow bitHuman's shape, ``^[A-Z][A-Z0-9]{9}$`` (e.g. ``A78WKV4515``). A tenant sees only
its own agents: another tenant's agent is NotFound, never Forbidden. Two implementations of
``AgentStore``: ``RedisAgentStore`` (production) and ``MemoryAgentStore`` (unit tests).
"""

from __future__ import annotations

import re
import secrets
import string
import threading
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import WatchError

from farm.infra.redis_conn import redis_errors
from farm.kernel import names
from farm.kernel.domain import Agent, AgentStatus
from farm.kernel.errors import Conflict, NotFound

if TYPE_CHECKING:
    from redis import Redis

AGENT_ID_PATTERN = r"^[A-Z][A-Z0-9]{9}$"
_AGENT_ID_RE = re.compile(AGENT_ID_PATTERN)
_ALPHABET = string.ascii_uppercase + string.digits


def is_agent_id(value: str) -> bool:
    """True when ``value`` is a well-formed agent code."""
    return bool(_AGENT_ID_RE.fullmatch(value))


def new_agent_id() -> str:
    """A fresh agent code: one letter then nine letters or digits."""
    return secrets.choice(string.ascii_uppercase) + "".join(secrets.choice(_ALPHABET) for _ in range(9))


def _not_found(agent_id: str) -> NotFound:
    return NotFound(f"agent {agent_id} not found")


def _updated(agent: Agent, status: AgentStatus, fields: dict[str, Any]) -> Agent:
    return agent.model_copy(update={**fields, "status": status, "updated_at": time.time()})


class MemoryAgentStore:
    """In-memory AgentStore for unit tests; same semantics as RedisAgentStore."""

    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._usage: dict[str, int] = {}
        self._last_used: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self, agent: Agent) -> Agent:
        with self._lock:
            if agent.id in self._agents:
                raise Conflict(f"agent {agent.id} already exists")
            self._agents[agent.id] = agent
        return agent

    def get(self, agent_id: str) -> Agent:
        with self._lock:
            agent = self._agents.get(agent_id)
        if agent is None:
            raise _not_found(agent_id)
        return agent

    def get_for_tenant(self, tenant: str, agent_id: str) -> Agent:
        agent = self.get(agent_id)
        if agent.tenant != tenant:
            raise _not_found(agent_id)
        return agent

    def list_for_tenant(self, tenant: str) -> list[Agent]:
        with self._lock:
            own = [a for a in self._agents.values() if a.tenant == tenant]
        return sorted(own, key=lambda a: a.created_at)

    def update(self, agent_id: str, status: AgentStatus, **fields: Any) -> Agent:
        with self._lock:
            agent = self._agents.get(agent_id)
            if agent is None:
                raise _not_found(agent_id)
            self._agents[agent_id] = _updated(agent, status, fields)
            return self._agents[agent_id]

    def record_use(self, agent_id: str) -> None:
        with self._lock:
            self._usage[agent_id] = self._usage.get(agent_id, 0) + 1
            self._last_used[agent_id] = time.time()

    def last_used(self, agent_ids: list[str]) -> dict[str, float]:
        with self._lock:
            return {a: self._last_used[a] for a in agent_ids if a in self._last_used}

    def delete(self, agent_id: str) -> None:
        with self._lock:
            if self._agents.pop(agent_id, None) is None:
                raise _not_found(agent_id)
            self._usage.pop(agent_id, None)
            self._last_used.pop(agent_id, None)

    def most_used(self, n: int) -> list[str]:
        with self._lock:
            ranked = sorted(self._usage.items(), key=lambda item: (-item[1], item[0]))
        return [agent_id for agent_id, _ in ranked[:n]]


class RedisAgentStore:
    """AgentStore in Redis: STRING ``farm:agent:<id>`` (JSON), SET per tenant, usage ZSET. An outage is
    BackendUnavailable, as in every store."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @redis_errors
    def create(self, agent: Agent) -> Agent:
        if not self._redis.set(names.agent_key(agent.id), agent.model_dump_json(), nx=True):
            raise Conflict(f"agent {agent.id} already exists")
        self._redis.sadd(names.tenant_agents_key(agent.tenant), agent.id)
        return agent

    @redis_errors
    def get(self, agent_id: str) -> Agent:
        raw = self._redis.get(names.agent_key(agent_id))
        if raw is None:
            raise _not_found(agent_id)
        return Agent.model_validate_json(raw)

    @redis_errors
    def get_for_tenant(self, tenant: str, agent_id: str) -> Agent:
        agent = self.get(agent_id)
        if agent.tenant != tenant:
            raise _not_found(agent_id)
        return agent

    @redis_errors
    def list_for_tenant(self, tenant: str) -> list[Agent]:
        ids = sorted(_text(i) for i in self._redis.smembers(names.tenant_agents_key(tenant)))
        raws = self._redis.mget([names.agent_key(i) for i in ids]) if ids else []
        agents = [Agent.model_validate_json(raw) for raw in raws if raw is not None]
        return sorted(agents, key=lambda a: a.created_at)

    @redis_errors
    def update(self, agent_id: str, status: AgentStatus, **fields: Any) -> Agent:
        """Read-modify-write under WATCH, retried when a concurrent update wins."""
        key = names.agent_key(agent_id)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw: Any = pipe.get(key)  # immediate while WATCHing
                    if raw is None:
                        raise _not_found(agent_id)
                    agent = _updated(Agent.model_validate_json(raw), status, fields)
                    pipe.multi()
                    pipe.set(key, agent.model_dump_json())
                    pipe.execute()
                    return agent
                except WatchError:
                    continue

    @redis_errors
    def record_use(self, agent_id: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zincrby(names.AGENT_USAGE_KEY, 1, agent_id)
        pipe.zadd(names.AGENT_LAST_USED_KEY, {agent_id: time.time()})
        pipe.execute()

    @redis_errors
    def last_used(self, agent_ids: list[str]) -> dict[str, float]:
        if not agent_ids:
            return {}
        scores = self._redis.zmscore(names.AGENT_LAST_USED_KEY, agent_ids)
        return {a: float(s) for a, s in zip(agent_ids, scores, strict=True) if s is not None}

    @redis_errors
    def most_used(self, n: int) -> list[str]:
        if n <= 0:
            return []
        return [_text(i) for i in self._redis.zrevrange(names.AGENT_USAGE_KEY, 0, n - 1)]

    @redis_errors
    def delete(self, agent_id: str) -> None:
        agent = self.get(agent_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(names.agent_key(agent_id), names.dynamics_rules_key(agent_id))
        pipe.srem(names.tenant_agents_key(agent.tenant), agent_id)
        pipe.zrem(names.AGENT_USAGE_KEY, agent_id)
        pipe.zrem(names.AGENT_LAST_USED_KEY, agent_id)
        pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
