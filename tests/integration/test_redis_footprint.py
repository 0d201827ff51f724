"""Nothing in Redis grows per session or per worker without a TTL or a cleaner.

After sessions complete, a worker dies with -9 and the others stop, every key left is either one of
the farm's durable keys (agents, the usage rank, the shared queues' bindings) or has a TTL.
"""

from __future__ import annotations

import pytest

from farm.infra.redis_conn import connect
from farm.kernel import names
from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import ModelKind, SessionState
from farm.kernel.settings import Settings
from farm.sessions.redis_store import RedisSessionStore
from tasks.producer import CelerySessionQueue, producer_app
from tests.integration.conftest import StartWorker, wait_until
from tests.integration.test_worker_sessions import new_session, wait_terminal

pytestmark = pytest.mark.integration

SESSIONS = 3
DURABLE = {
    names.AGENT_USAGE_KEY,  # the hot-avatar rank (one member per agent)
    f"_kombu.binding.{names.QUEUE_ESSENCE}",  # the shared queue's binding (one per queue)
    f"_kombu.binding_permanent.{names.QUEUE_ESSENCE}",  # kombu's mark that it never expires
    "_kombu.binding_deadlines",  # kombu's own sweep index of expiring exchanges (one per exchange)
    names.RECENT_SESSIONS_KEY,  # the operators' latest finished sessions, trimmed to RECENT_SESSIONS_MAX
    names.REDIS_RUN_ID_KEY,  # the reaper's record of the Redis server it last saw (one string)
}


def test_after_sessions_end_and_workers_stop_only_durable_keys_are_left_without_a_ttl(
    settings: Settings, redis_url: str, start_worker: StartWorker
) -> None:
    cfg = settings.model_copy(update={"redis_url": redis_url, "worker_ttl_s": 1.5, "heartbeat_s": 0.5})
    client = connect(redis_url)
    doomed = start_worker(cfg, "essence")
    survivor = start_worker(cfg, "essence")
    assert doomed.info is not None and survivor.info is not None
    private = names.worker_queue(doomed.info.worker_id)
    wait_until(lambda: client.exists(f"_kombu.binding.{private}"), deadline_s=30, what="its private queue")
    doomed.kill()

    store = RedisSessionStore(client)
    queue = CelerySessionQueue(producer_app(cfg))
    sessions = [new_session(cfg, store, ModelKind.ESSENCE, seconds=0.4) for _ in range(SESSIONS)]
    for session in sessions:
        queue.submit(RunSessionMessage(session_id=session.id, model=session.model))
    for session in sessions:
        assert wait_terminal(store, session.id, deadline_s=60).state is SessionState.ENDED
    wait_until(
        lambda: not client.exists(f"_kombu.binding.{private}"),
        deadline_s=30,
        what="the dead worker's private queue binding to be swept",
    )
    wait_until(  # the janitor logs after it deletes: the line may trail the binding by a moment
        lambda: "dead worker's private queue deleted" in survivor.log(),
        deadline_s=10,
        what="the survivor to log the sweep",
    )
    survivor.stop()

    agents = {names.agent_key(s.avatar_id) for s in sessions if s.avatar_id}
    tenants = {names.tenant_agents_key(s.tenant) for s in sessions}
    lasting = DURABLE | agents | tenants
    without_ttl = sorted(k for k in client.scan_iter("*") if client.ttl(k) == -1 and k not in lasting)
    assert without_ttl == [], {k: client.type(k) for k in without_ttl}
    per_session = [k for k in client.scan_iter("*") if any(s.id in k for s in sessions)]
    assert per_session and all(client.ttl(k) > 0 for k in per_session)
