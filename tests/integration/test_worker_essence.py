"""The production worker entrypoint with the real Essence engine: build an agent's pack on the build
queue, then render a session of that agent into an MP4 on the essence queue."""

from __future__ import annotations

import io
import math
import uuid

import av
import pytest
from PIL import Image

from farm.infra.blobs import BlobStore
from farm.infra.redis_conn import connect
from farm.kernel.contracts import BuildAgentMessage, RunSessionMessage
from farm.kernel.domain import Agent, AgentStatus, ModelKind, Session, SessionState
from farm.kernel.settings import Settings
from farm.render.base import SAMPLES_PER_FRAME
from farm.render.landmarks import sample_portrait
from farm.sessions.agents import RedisAgentStore, new_agent_id
from farm.sessions.redis_store import RedisSessionStore
from tasks.producer import CelerySessionQueue, producer_app, submit_build
from tests.integration.conftest import REAL_ENTRY, StartWorker, wait_until
from tests.integration.test_worker_sessions import LEGAL_PATH, wait_terminal, wav_bytes

pytestmark = pytest.mark.integration


def portrait_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(sample_portrait()).save(buf, "PNG")
    return buf.getvalue()


def blank_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (128, 128, 128)).save(buf, "PNG")
    return buf.getvalue()


def test_a_built_agent_speaks_into_an_mp4_rendered_by_the_real_essence_engine(
    settings: Settings, redis_url: str, start_worker: StartWorker
) -> None:
    cfg = settings.model_copy(update={"redis_url": redis_url, "essence_size": 256})
    client = connect(redis_url)
    agents, store, blobs = RedisAgentStore(client), RedisSessionStore(client), BlobStore(cfg.blob_dir)
    app = producer_app(cfg)
    start_worker(cfg, "build", concurrency=1, entry=REAL_ENTRY)
    essence = start_worker(cfg, "essence", entry=REAL_ENTRY)
    assert essence.info is not None
    assert essence.info.models == ["essence"] and essence.info.backend == "numpy"
    assert essence.info.prewarm_s is not None and essence.info.prewarm_s > 0

    image_ref = blobs.put(portrait_png(), ".png")
    agent = agents.create(Agent(id=new_agent_id(), tenant="t1", image_ref=image_ref))
    faceless = agents.create(Agent(id=new_agent_id(), tenant="t1", image_ref=blobs.put(blank_png(), ".png")))
    submit_build(app, BuildAgentMessage(agent_id=faceless.id))
    submit_build(app, BuildAgentMessage(agent_id=agent.id))

    def built(agent_id: str) -> Agent | None:
        current = agents.get(agent_id)
        return None if current.status is AgentStatus.PROCESSING else current

    ready = wait_until(lambda: built(agent.id), deadline_s=90, what="the agent's pack build")
    assert ready.status is AgentStatus.READY, ready.error_message
    failed = wait_until(lambda: built(faceless.id), deadline_s=30, what="the faceless build")
    assert failed.status is AgentStatus.FAILED and failed.pack_ref is None
    assert failed.error_message and "face" in failed.error_message.lower()
    assert ready.pack_ref and (cfg.data_dir / ready.pack_ref).is_dir()
    assert ready.gestures
    previews = cfg.data_dir / "previews" / ready.id  # served by GET /v1/dynamics/{agent_id}
    assert sorted(p.stem for p in previews.glob("*.mp4")) == sorted(ready.gestures)

    session, _ = store.create(
        Session(
            id=uuid.uuid4().hex,
            tenant="t1",
            model=ModelKind.ESSENCE,
            avatar_id=agent.id,
            audio_ref=blobs.put(wav_bytes(1.5, rate=22_050), ".wav"),
        )
    )
    CelerySessionQueue(app).submit(RunSessionMessage(session_id=session.id, model=ModelKind.ESSENCE))
    final = wait_terminal(store, session.id, deadline_s=90)

    assert final.state is SessionState.ENDED, final.failure
    assert [h.state for h in final.history] == LEGAL_PATH
    assert final.output is not None
    with av.open(final.output) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (256, 256)
        assert container.streams.audio
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(frames - math.ceil(1.5 * 16_000 / SAMPLES_PER_FRAME)) <= 1


def test_an_essence_session_from_a_bare_portrait_builds_its_pack_on_the_worker(
    settings: Settings, redis_url: str, start_worker: StartWorker
) -> None:
    cfg = settings.model_copy(update={"redis_url": redis_url, "essence_size": 192})
    store, blobs = RedisSessionStore(connect(redis_url)), BlobStore(cfg.blob_dir)
    start_worker(cfg, "essence", entry=REAL_ENTRY)
    session, _ = store.create(
        Session(
            id=uuid.uuid4().hex,
            tenant="t1",
            model=ModelKind.ESSENCE,
            image_ref=blobs.put(portrait_png(), ".png"),
            audio_ref=blobs.put(wav_bytes(0.5), ".wav"),
        )
    )
    CelerySessionQueue(producer_app(cfg)).submit(
        RunSessionMessage(session_id=session.id, model=ModelKind.ESSENCE)
    )
    final = wait_terminal(store, session.id, deadline_s=90)
    assert final.state is SessionState.ENDED, final.failure
    assert final.output is not None
    with av.open(final.output) as container:
        assert sum(1 for _ in container.decode(video=0)) == math.ceil(0.5 * 16_000 / SAMPLES_PER_FRAME)
