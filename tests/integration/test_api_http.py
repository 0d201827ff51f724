"""The production API (``build_app``) over real HTTP, real Redis and real Celery workers.

Workers run the real worker app with the ToneEngine standing in for the render models (see
tests/support), except for agent builds, which run the real Essence pack builder.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
import redis

from farm.client import AvatarSession, ConflictError, SessionInfo
from farm.kernel import names
from farm.kernel.domain import SessionState
from farm.kernel.settings import Settings
from farm.render.landmarks import sample_portrait
from farm.tenancy.api_keys import RedisKeyStore
from tests.integration.api_support import LiveApi, live_api
from tests.integration.conftest import StartWorker
from tests.unit.api_support import b64, png_bytes, wav_bytes

pytestmark = pytest.mark.integration

LEGAL_PATH = ["QUEUED", "ASSIGNED", "STARTING", "STREAMING", "ENDING", "ENDED"]
QUEUES = (names.QUEUE_ESSENCE, names.QUEUE_EXPRESSION, names.QUEUE_BUILD)


@pytest.fixture
def farm_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url})


@pytest.fixture
def api(farm_settings: Settings) -> Iterator[LiveApi]:
    with live_api(farm_settings) as server:
        yield server


@pytest.fixture
def secrets(redis_client: redis.Redis) -> tuple[str, str]:
    keys = RedisKeyStore(redis_client)
    return keys.create("tenant-a", "a")[1], keys.create("tenant-b", "b")[1]


def _queue_lengths(client: redis.Redis) -> dict[str, int]:
    return {queue: int(client.llen(queue)) for queue in QUEUES}  # type: ignore[arg-type]


def _portrait_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(sample_portrait()).save(buf, format="PNG")
    return buf.getvalue()


def _assert_rendered(done: SessionInfo, seconds: float) -> None:
    assert done.status == "ENDED", (done.raw["failure"], done.history)
    assert [h["state"] for h in done.history] == LEGAL_PATH, [(h["state"], h["reason"]) for h in done.history]
    with av.open(str(done.raw["output"])) as container:
        assert container.streams.audio, "the MP4 has no audio track"
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(frames - 25 * seconds) <= 1


def test_a_session_with_an_uploaded_face_is_rendered_by_a_warm_worker_into_an_mp4(
    api: LiveApi, farm_settings: Settings, secrets: tuple[str, str], start_worker: StartWorker
) -> None:
    start_worker(farm_settings, names.QUEUE_ESSENCE)  # its pack is built on the worker, under the lease
    with AvatarSession(api_url=api.url, api_secret=secrets[0], max_retries=0) as farm:
        created = farm.create_session(audio=wav_bytes(1.0), avatar_image=_portrait_png())
        _assert_rendered(farm.wait_session(created.session_id, deadline_s=90), 1.0)
        with pytest.raises(ConflictError):
            farm.stop_session(created.session_id)


def test_an_expression_session_lands_on_the_expression_queue_and_nowhere_else(
    api: LiveApi, secrets: tuple[str, str], redis_client: redis.Redis
) -> None:
    with AvatarSession(api_url=api.url, api_secret=secrets[0], max_retries=0) as farm:
        created = farm.create_session(audio=wav_bytes(), avatar_image=png_bytes(), model="expression")
        assert created.status == "QUEUED"
    assert _queue_lengths(redis_client) == {"essence": 0, "expression": 1, "build": 0}
    (raw,) = redis_client.lrange(names.QUEUE_EXPRESSION, 0, -1)  # type: ignore[misc]
    assert created.session_id in str(raw)


def test_bad_input_over_http_stores_nothing_and_enqueues_nothing(
    api: LiveApi, secrets: tuple[str, str], redis_client: redis.Redis, farm_settings: Settings
) -> None:
    other_agent = (
        AvatarSession(api_url=api.url, api_secret=secrets[1], max_retries=0)
        .create_agent(png_bytes())
        .agent_id
    )
    redis_client.delete(names.QUEUE_BUILD)  # the other tenant's build request is not under test
    stored_before = set(redis_client.keys("farm:*"))  # type: ignore[arg-type]
    blobs_before = {p for p in farm_settings.blob_dir.rglob("*") if p.is_file()}
    headers = {"api-secret": secrets[0]}
    audio, image = b64(wav_bytes()), b64(png_bytes())
    cases: list[tuple[dict[str, object], int, str]] = [
        ({"json": {"audio": audio, "avatar_image": image}, "headers": {}}, 401, "UNAUTHORIZED"),
        (
            {"json": {"audio": audio, "avatar_image": image}, "headers": {"api-secret": "farm_x"}},
            401,
            "UNAUTHORIZED",
        ),
        (
            {"content": b'{"audio": ', "headers": {**headers, "content-type": "application/json"}},
            400,
            "MALFORMED_JSON",
        ),
        ({"json": {"audio": audio, "avatar_image": image, "model": "hologram"}}, 400, "MODEL_NOT_CONFIGURED"),
        (
            {"json": {"audio": audio, "avatar_image": image, "avatar_id": "A78WKV4515"}},
            400,
            "VALIDATION_ERROR",
        ),
        ({"json": {"audio": audio}}, 400, "VALIDATION_ERROR"),
        ({"json": {"audio": audio, "avatar_id": "nope"}}, 400, "VALIDATION_ERROR"),
        ({"json": {"audio": audio, "avatar_id": "A78WKV4515"}}, 404, "NOT_FOUND"),
        ({"json": {"audio": audio, "avatar_id": other_agent}}, 404, "NOT_FOUND"),
        ({"json": {"audio": audio, "avatar_image": b64(b"not an image")}}, 400, "INVALID_IMAGE"),
        ({"json": {"audio": b64(b"not audio at all" * 10), "avatar_image": image}}, 400, "INVALID_AUDIO"),
    ]
    for request, status, code in cases:
        kwargs = {"headers": headers, **request}
        response = httpx.post(f"{api.url}/v1/sessions", **kwargs)  # type: ignore[arg-type]
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), request
    stored_after = {k for k in redis_client.keys("farm:*") if not k.startswith("farm:ratelimit:")}
    assert stored_after == stored_before  # failed-auth rate buckets aside: bookkeeping, not records
    assert _queue_lengths(redis_client) == {"essence": 0, "expression": 0, "build": 0}
    assert {p for p in farm_settings.blob_dir.rglob("*") if p.is_file()} == blobs_before


def test_a_registered_agent_is_built_on_the_build_queue_then_speaks(
    api: LiveApi, farm_settings: Settings, secrets: tuple[str, str], start_worker: StartWorker
) -> None:
    start_worker(farm_settings, names.QUEUE_BUILD, concurrency=1)
    start_worker(farm_settings, names.QUEUE_ESSENCE)
    with AvatarSession(api_url=api.url, api_secret=secrets[0], max_retries=0) as farm:
        agent = farm.create_agent(_portrait_png())
        assert agent.status == "processing"
        ready = farm.wait_agent(agent.agent_id, deadline_s=120)
        assert ready.status == "ready", ready.raw
        assert ready.raw["gestures"]
        session = farm.create_session(audio=wav_bytes(2.0), avatar_id=agent.agent_id)
        _assert_rendered(farm.wait_session(session.session_id, deadline_s=60), 2.0)
        with pytest.raises(Exception) as foreign:
            AvatarSession(api_url=api.url, api_secret=secrets[1], max_retries=0).get_agent(agent.agent_id)
        assert getattr(foreign.value, "code", None) == "NOT_FOUND"


def test_the_fleet_shows_the_warm_worker_by_queue(
    api: LiveApi, farm_settings: Settings, secrets: tuple[str, str], start_worker: StartWorker
) -> None:
    worker = start_worker(farm_settings, names.QUEUE_ESSENCE, concurrency=3)
    with AvatarSession(api_url=api.url, api_secret=secrets[0], max_retries=0) as farm:
        fleet = farm.fleet()["queues"]
    (listed,) = fleet["essence"]["workers"]
    assert worker.info is not None and listed["worker_id"] == worker.info.worker_id
    assert (listed["state"], listed["capacity"], listed["free_slots"]) == ("READY", 3, 3)
    assert listed["prewarm_s"] is not None
    assert fleet["expression"]["workers"] == []


def test_readiness_follows_redis(farm_settings: Settings, tmp_path: Path) -> None:
    from tests.integration.api_support import free_port

    dead = farm_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with live_api(dead) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        response = httpx.get(f"{server.url}/readyz")
        assert (response.status_code, response.json()["error"]["code"]) == (503, "BACKEND_UNAVAILABLE")


def test_sessions_of_other_tenants_are_invisible(api: LiveApi, secrets: tuple[str, str]) -> None:
    mine, theirs = (
        AvatarSession(api_url=api.url, api_secret=secrets[0], max_retries=0),
        AvatarSession(api_url=api.url, api_secret=secrets[1], max_retries=0),
    )
    created = mine.create_session(audio=wav_bytes(), avatar_image=png_bytes())
    assert [s.session_id for s in theirs.list_sessions()] == []
    with pytest.raises(Exception) as missing:
        theirs.stop_session(created.session_id)
    assert getattr(missing.value, "code", None) == "NOT_FOUND"
    assert mine.get_session(created.session_id).status == SessionState.QUEUED.value
