"""A client's stop reaches the worker holding the session as a notice on ``farm:stop``: the session
ends at its next frame, not at the worker's next lease renewal (here 20 s away)."""

from __future__ import annotations

import pytest
import redis

from farm.kernel.contracts import RunSessionMessage
from farm.kernel.domain import ModelKind, SessionState
from farm.kernel.settings import Settings
from farm.sessions.redis_store import RedisSessionStore
from tasks.producer import CelerySessionQueue, producer_app
from tests.integration.conftest import StartWorker, wait_until
from tests.integration.test_worker_sessions import new_session, wait_terminal

pytestmark = pytest.mark.integration

CLIP_S = 600.0  # far longer than the test: only the stop can end it in time


@pytest.fixture
def slow_renewal(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(
        update={
            "redis_url": redis_url,
            "lease_renew_s": 20.0,
            "lease_ttl_s": 60.0,
            "stall_timeout_s": 40.0,
            "max_audio_s": CLIP_S,
        }
    )


@pytest.fixture
def store(redis_client: redis.Redis) -> RedisSessionStore:
    return RedisSessionStore(redis_client)


def test_a_stop_request_ends_a_streaming_session_before_the_next_lease_renewal(
    slow_renewal: Settings, store: RedisSessionStore, start_worker: StartWorker
) -> None:
    start_worker(slow_renewal, "essence")
    session = new_session(slow_renewal, store, ModelKind.ESSENCE, seconds=CLIP_S)
    CelerySessionQueue(producer_app(slow_renewal)).submit(
        RunSessionMessage(session_id=session.id, model=session.model)
    )
    wait_until(lambda: store.get(session.id).state is SessionState.STREAMING, deadline_s=60, what="streaming")

    store.request_stop(session.id)
    ended = wait_terminal(store, session.id, deadline_s=10)  # the next renewal is up to 20 s away

    assert ended.state is SessionState.ENDED
    assert ended.history[-1].reason and "stop" in ended.history[-1].reason
