"""The production worker entrypoint with the real Expression engine (torch on CPU here): a session
with a bare portrait is rendered on the expression queue into an MP4."""

from __future__ import annotations

import math
import uuid

import av
import pytest

from farm.infra.blobs import BlobStore
from farm.infra.redis_conn import connect
from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.kernel.settings import Settings
from farm.render.base import SAMPLES_PER_FRAME
from farm.sessions.redis_store import RedisSessionStore
from tasks.producer import CelerySessionQueue, producer_app
from tests.integration.conftest import REAL_ENTRY, StartWorker
from tests.integration.test_worker_essence import portrait_png
from tests.integration.test_worker_sessions import LEGAL_PATH, wait_terminal, wav_bytes

pytestmark = pytest.mark.integration


def test_a_portrait_session_is_rendered_by_the_real_expression_engine(
    settings: Settings, redis_url: str, start_worker: StartWorker
) -> None:
    cfg = settings.model_copy(
        update={"redis_url": redis_url, "expression_size": 256, "expression_max_batch": 2}
    )
    worker = start_worker(cfg, "expression", concurrency=1, entry=REAL_ENTRY)
    assert worker.info is not None and worker.info.models == ["expression"]
    assert worker.info.backend is not None and worker.info.backend.startswith("torch")
    store, blobs = RedisSessionStore(connect(redis_url)), BlobStore(cfg.blob_dir)
    session, _ = store.create(
        Session(
            id=uuid.uuid4().hex,
            tenant="t1",
            model=ModelKind.EXPRESSION,
            image_ref=blobs.put(portrait_png(), ".png"),
            audio_ref=blobs.put(wav_bytes(0.6), ".wav"),
        )
    )
    CelerySessionQueue(producer_app(cfg)).submit(
        RunSessionMessage(session_id=session.id, model=ModelKind.EXPRESSION)
    )
    final = wait_terminal(store, session.id, deadline_s=120)
    assert final.state is SessionState.ENDED, final.failure
    assert [h.state for h in final.history] == LEGAL_PATH
    assert final.output is not None
    with av.open(final.output) as container:
        assert container.streams.audio
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(frames - math.ceil(0.6 * 16_000 / SAMPLES_PER_FRAME)) <= 1
