"""The Redis side of text in: the speak topic, agent deletion, live sessions per tenant, replays."""

from __future__ import annotations

import threading

import pytest
import redis

from farm.api.idempotency import RedisReplayStore
from farm.infra.speak import RedisSpeakBus
from farm.kernel import names
from farm.kernel.contracts import SpeakMessage
from farm.kernel.domain import Agent, ModelKind, Session, SessionState
from farm.kernel.errors import NotFound
from farm.sessions.agents import RedisAgentStore, new_agent_id
from farm.sessions.redis_store import RedisSessionStore

pytestmark = pytest.mark.integration


def test_a_speak_message_reaches_every_subscribed_worker(redis_url: str) -> None:
    workers = [RedisSpeakBus(redis_url), RedisSpeakBus(redis_url)]
    got: list[list[SpeakMessage]] = [[], []]
    arrived = threading.Barrier(3)
    for bus, inbox in zip(workers, got, strict=True):
        bus.start(lambda m, inbox=inbox: (inbox.append(m), arrived.wait(5)))
        assert bus.wait_subscribed(5)
    api = RedisSpeakBus(redis_url)
    sent = SpeakMessage(
        tenant="t", agent_id="A78WKV4515", session_id="s1", text="hi", audio_wav_b64="UklGRg=="
    )
    try:
        assert api.publish(sent) == 2
        arrived.wait(5)
        assert [inbox[0].message_id for inbox in got] == [sent.message_id] * 2
    finally:
        for bus in (*workers, api):
            bus.close()


def test_a_deleted_agent_is_gone_from_its_tenant_and_the_usage_rank(redis_client: redis.Redis) -> None:
    agents = RedisAgentStore(redis_client)
    agent = agents.create(Agent(id=new_agent_id(), tenant="t", image_ref="sha256/x.png"))
    agents.record_use(agent.id)
    agents.delete(agent.id)
    with pytest.raises(NotFound):
        agents.get(agent.id)
    assert agents.list_for_tenant("t") == [] and agents.most_used(5) == []
    with pytest.raises(NotFound):
        agents.delete(agent.id)


def test_live_sessions_of_a_tenant_exclude_ended_ones_and_other_tenants(redis_client: redis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    for sid, tenant in (("a1", "t"), ("a2", "t"), ("b1", "u")):
        store.create(Session(id=sid, tenant=tenant, model=ModelKind.ESSENCE), max_live=10)
    store.transition("a2", SessionState.ENDED, reason="stopped")
    assert [s.id for s in store.live_for_tenant("t")] == ["a1"]


def test_a_replayed_response_is_kept_once_per_tenant_and_route(redis_client: redis.Redis) -> None:
    replays = RedisReplayStore(redis_client)
    replays.put("t", "video.generate", "k", '{"n": 1}')
    replays.put("t", "video.generate", "k", '{"n": 2}')  # first wins
    assert replays.get("t", "video.generate", "k") == '{"n": 1}'
    assert replays.get("u", "video.generate", "k") is None
    (key,) = redis_client.keys(f"{names.PREFIX}:idemresp:*")
    assert 0 < redis_client.ttl(key) <= names.IDEMPOTENT_RESPONSE_TTL_S


def test_redis_token_buckets_are_shared_by_api_replicas_and_refill(redis_client: redis.Redis) -> None:
    from farm.api.ratelimit import RedisRateLimiter

    now = [5000.0]
    replica_a, replica_b = (RedisRateLimiter(redis_client, clock=lambda: now[0]) for _ in range(2))
    taken = [replica_a.take("tenant:t", "generate", 4), replica_b.take("tenant:t", "generate", 4)]
    taken += [replica_a.take("tenant:t", "generate", 4) for _ in range(3)]
    assert [d.allowed for d in taken] == [True, True, True, True, False]
    assert (taken[-1].remaining, taken[-1].retry_after_s, taken[-1].reset_s) == (0, 15, 60)
    now[0] += 15.0
    assert replica_b.take("tenant:t", "generate", 4).allowed
    assert replica_b.take("tenant:u", "generate", 4).remaining == 3  # another tenant's bucket
    (key,) = redis_client.keys(names.rate_bucket_key("tenant:t", "generate"))
    assert 0 < redis_client.ttl(key) <= 120
