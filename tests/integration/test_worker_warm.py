"""Prewarm and warm routing with real Celery workers: a worker consumes nothing before READY, the hot
set is preloaded and advertised, a session for a held avatar goes to the worker that holds it, and a
session stranded on a dead worker's private queue is rescued onto the shared queue."""

from __future__ import annotations

import uuid

import pytest

from farm.infra.blobs import BlobStore
from farm.infra.redis_conn import connect
from farm.kernel import names
from farm.kernel.contracts import RunSessionMessage, WorkerInfo
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.settings import Settings
from farm.sessions.agents import RedisAgentStore
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import RedisWorkerRegistry
from farm.sessions.warm import WarmRouter
from tasks.producer import CelerySessionQueue, producer_app
from tests.integration.conftest import StartWorker, WorkerProcess, wait_until
from tests.integration.test_worker_sessions import ready_agent, wait_terminal, wav_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
def fast_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(
        update={"redis_url": redis_url, "reaper_interval_s": 0.3, "heartbeat_s": 0.3, "worker_ttl_s": 2.0}
    )


def queued_session(settings: Settings, agent_id: str, *, routed_to: str | None = None) -> Session:
    blobs = BlobStore(settings.blob_dir)
    session = Session(
        id=uuid.uuid4().hex,
        tenant="t1",
        model=ModelKind.ESSENCE,
        avatar_id=agent_id,
        audio_ref=blobs.put(wav_bytes(0.3), ".wav"),
        routed_to=routed_to,
    )
    created, _ = RedisSessionStore(connect(str(settings.redis_url))).create(session)
    return created


def registry_entry(settings: Settings, worker: WorkerProcess) -> WorkerInfo | None:
    registry = RedisWorkerRegistry(connect(str(settings.redis_url)))
    return next((w for w in registry.list() if w.hostname.startswith(f"{worker.nodename}@")), None)


def assigned_at(session: Session) -> float:
    return next(h.at for h in session.history if h.state is SessionState.ASSIGNED)


def test_a_slowly_prewarming_worker_claims_nothing_before_it_is_ready(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    image_ref = BlobStore(fast_settings.blob_dir).put(b"portrait", ".png")
    agent_id = ready_agent(fast_settings, image_ref)
    worker = start_worker(
        fast_settings, "essence", env={"FARM_TEST_PREWARM_DELAY_S": "2.5"}, wait_state="STARTING"
    )
    session = queued_session(fast_settings, agent_id)
    CelerySessionQueue(producer_app(fast_settings)).submit(
        RunSessionMessage(session_id=session.id, model=session.model)
    )

    store = RedisSessionStore(connect(str(fast_settings.redis_url)))
    final = wait_terminal(store, session.id, deadline_s=60)

    entry = registry_entry(fast_settings, worker)
    assert final.state is SessionState.ENDED, final.failure
    assert entry is not None and entry.state == "READY" and entry.ready_at is not None
    assert entry.prewarm_s is not None and entry.prewarm_s >= 2.5
    assert assigned_at(final) >= entry.ready_at  # posted while STARTING, claimed only once READY
    log = worker.log()
    assert log.index(" ready.") < log.index("farm.session.run[")  # not even delivered before READY


def test_the_most_used_agents_are_preloaded_and_their_sessions_go_to_the_worker_holding_them(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    image_ref = BlobStore(fast_settings.blob_dir).put(b"portrait", ".png")
    agents = [ready_agent(fast_settings, image_ref) for _ in range(3)]
    usage = RedisAgentStore(connect(str(fast_settings.redis_url)))
    for agent_id, uses in zip(agents, (5, 1, 3), strict=True):
        for _ in range(uses):
            usage.record_use(agent_id)
    cold = start_worker(fast_settings, "essence", env={"FARM_HOT_AVATARS": "0"})
    hot = start_worker(fast_settings, "essence", env={"FARM_HOT_AVATARS": "2"})
    wait_until(
        lambda: (e := registry_entry(fast_settings, hot)) and e.warm_queue,
        deadline_s=10,
        what="the hot worker advertising its private queue",
    )

    before = registry_entry(fast_settings, hot)
    assert before is not None and before.hot_avatars == [agents[0], agents[2]]  # the two most used
    assert set(before.cached_avatars) == {agents[0], agents[2]}
    assert before.warm_queue == names.worker_queue(before.worker_id)
    assert cold.info is not None and cold.info.hot_avatars == []

    router = WarmRouter(RedisWorkerRegistry(connect(str(fast_settings.redis_url))))
    target = router.pick(ModelKind.ESSENCE, agents[0])
    assert target == before.worker_id
    assert router.pick(ModelKind.ESSENCE, agents[1]) is None  # nobody holds it: shared queue
    session = queued_session(fast_settings, agents[0], routed_to=target)
    CelerySessionQueue(producer_app(fast_settings)).submit(
        RunSessionMessage(session_id=session.id, model=session.model, worker_id=target)
    )
    final = wait_terminal(RedisSessionStore(connect(str(fast_settings.redis_url))), session.id)

    assert final.state is SessionState.ENDED, final.failure
    assert final.worker_id == before.worker_id and final.routed_to == before.worker_id

    def hit_published() -> WorkerInfo | None:
        entry = registry_entry(fast_settings, hot)
        return entry if entry is not None and entry.avatar_hits > before.avatar_hits else None

    after = wait_until(hit_published, deadline_s=10, what="the hot worker publishing its cache hit")
    assert after.avatar_misses == before.avatar_misses  # hot: served from the cache, no pack load


def test_a_session_stranded_on_a_dead_workers_private_queue_is_rescued_by_the_shared_queue(
    fast_settings: Settings, start_worker: StartWorker
) -> None:
    image_ref = BlobStore(fast_settings.blob_dir).put(b"portrait", ".png")
    agent_id = ready_agent(fast_settings, image_ref)
    doomed = start_worker(fast_settings, "essence")
    assert doomed.info is not None
    ghost = doomed.info.worker_id
    wait_until(
        lambda: (e := registry_entry(fast_settings, doomed)) and e.warm_queue,
        deadline_s=10,
        what="the worker advertising its private queue",
    )
    doomed.kill()  # SIGKILL: its registry entry expires, its private queue is never read again
    session = queued_session(fast_settings, agent_id, routed_to=ghost)
    CelerySessionQueue(producer_app(fast_settings)).submit(
        RunSessionMessage(session_id=session.id, model=session.model, worker_id=ghost)
    )
    client = connect(str(fast_settings.redis_url))
    assert client.llen(names.worker_queue(ghost)) == 1

    survivor = start_worker(fast_settings, "essence")
    final = wait_terminal(RedisSessionStore(client), session.id, deadline_s=60)

    assert final.state is SessionState.ENDED, final.failure
    assert survivor.info is not None and final.worker_id == survivor.info.worker_id
    assert client.get(names.session_rerouted_key(session.id)) == ghost

    binding = f"_kombu.binding.{names.worker_queue(survivor.info.worker_id)}"  # kombu's exchange → queue
    assert client.exists(binding)
    survivor.stop()  # a worker that deregisters removes its own private queue
    assert not client.exists(binding)
