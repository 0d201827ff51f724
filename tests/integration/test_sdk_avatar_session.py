"""The documentation's SDK snippets, import changed only, against a real farm.

Real HTTP (``build_app`` under uvicorn), real Redis, real Celery workers (ToneEngine renders; agent
builds run the real Essence pack builder) and real espeak-ng speech. Each video is downloaded and
measured with PyAV: its length must be the length of the speech.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import redis
from PIL import Image

import farm.client as bithuman
from farm.client import AsyncAvatarSession, AvatarResponse, AvatarSession
from farm.infra import media
from farm.infra.redis_conn import connect
from farm.infra.speech import EspeakSynthesizer
from farm.kernel import names
from farm.kernel.settings import Settings
from farm.render.landmarks import sample_portrait
from farm.tenancy.api_keys import RedisKeyStore
from farm.tenancy.metering import Metering, RedisLedger
from tests.integration.api_support import LiveApi, live_api
from tests.integration.conftest import StartWorker

pytestmark = pytest.mark.integration

FPS = 25


@pytest.fixture
def farm_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url})


@pytest.fixture
def api(farm_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveApi]:
    with live_api(farm_settings) as server:
        monkeypatch.setenv("FARM_API_URL", server.url)  # the snippets name no URL
        yield server


@pytest.fixture
def secret(redis_client: redis.Redis) -> str:
    return RedisKeyStore(redis_client).create("tenant-a", "docs")[1]


def _speech_s(text: str) -> float:
    pcm, rate = media.decode_audio(EspeakSynthesizer().synthesize(text), max_s=600)
    return len(pcm) / rate


def _assert_video_matches_the_speech(response: AvatarResponse, text: str, path: Path) -> None:
    """The MP4 has one frame per 40 ms of the spoken text and an audio track as long."""
    spoken_s = _speech_s(text)
    assert response.duration_s == pytest.approx(spoken_s, abs=0.01)
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
        container.seek(0)
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio))
        audio_s = samples / audio.rate
    assert abs(frames - spoken_s * FPS) <= 2, (frames, spoken_s)
    assert audio_s == pytest.approx(spoken_s, abs=0.1)
    assert response.first_frame_s is not None and 0 < response.first_frame_s <= response.total_s


def _portrait() -> Image.Image:
    return Image.fromarray(sample_portrait())


def test_the_three_documented_forms_answer_text_with_a_video_as_long_as_the_speech(
    api: LiveApi, farm_settings: Settings, secret: str, start_worker: StartWorker, tmp_path: Path
) -> None:
    start_worker(farm_settings, names.QUEUE_BUILD, concurrency=1)
    start_worker(farm_settings, names.QUEUE_ESSENCE, concurrency=1)
    start_worker(farm_settings, names.QUEUE_EXPRESSION, concurrency=1)
    # an agent code to address, built for real
    with AvatarSession(api_url=api.url, api_secret=secret, max_retries=0) as raw:
        code = raw.create_agent(Path(_portrait_png(tmp_path)).read_bytes()).agent_id
        assert raw.wait_agent(code, deadline_s=180).status == "ready"

    # --- as in the docs, with only the import changed
    avatar = AvatarSession(avatar_id=code, api_secret=secret)  # essence (default)
    response = avatar.generate_response("Hello, how are you?")
    _assert_video_matches_the_speech(response, "Hello, how are you?", response.download(tmp_path / "a.mp4"))
    assert response.text == "Hello, how are you?"  # no answering model configured: spoken as given

    avatar = AvatarSession(avatar_id=code, api_secret=secret, model="expression")
    response = avatar.generate_response("Tell me about yourself")
    _assert_video_matches_the_speech(
        response, "Tell me about yourself", response.download(tmp_path / "b.mp4")
    )

    avatar = AvatarSession(avatar_image=_portrait(), api_secret=secret, model="expression")
    response = avatar.generate_response("Nice to meet you.")
    _assert_video_matches_the_speech(response, "Nice to meet you.", response.download(tmp_path / "c.mp4"))

    with AvatarSession(avatar_image=_portrait(), api_secret=secret) as avatar:  # essence from an image
        response = avatar.generate_response("My pack is built on first use.")
        _assert_video_matches_the_speech(
            response, "My pack is built on first use.", response.download(tmp_path / "d.mp4")
        )

    async def asynchronously() -> tuple[AvatarResponse, Path]:
        async with AsyncAvatarSession(avatar_id=code, api_secret=secret) as avatar:
            response = await avatar.generate_response("Async works too.")
            return response, await response.adownload(tmp_path / "e.mp4")

    response, path = asyncio.run(asynchronously())
    _assert_video_matches_the_speech(response, "Async works too.", path)


def _portrait_png(tmp_path: Path) -> Path:
    path = tmp_path / "me.png"
    _portrait().save(path)
    return path


class AvatarManager:
    """The documentation's session-management pattern, verbatim but for the import."""

    def __init__(self, api_secret: str) -> None:
        self.api_secret = api_secret
        self.sessions: dict[str, bithuman.AvatarSession] = {}

    def create_session(self, session_id: str, avatar_id: str | None = None, model: str = "essence",
                       avatar_image: Image.Image | None = None) -> bithuman.AvatarSession:  # fmt: skip
        self.sessions[session_id] = bithuman.AvatarSession(
            avatar_id=avatar_id, avatar_image=avatar_image, api_secret=self.api_secret, model=model
        )
        return self.sessions[session_id]

    def get_response(self, session_id: str, message: str) -> bithuman.AvatarResponse | None:
        if session_id in self.sessions:
            return self.sessions[session_id].generate_response(message)
        return None


def test_the_manager_and_error_handling_patterns_from_the_docs(
    api: LiveApi, farm_settings: Settings, secret: str, start_worker: StartWorker, tmp_path: Path
) -> None:
    start_worker(farm_settings, names.QUEUE_EXPRESSION, concurrency=1)
    manager = AvatarManager(secret)
    manager.create_session("user_123", avatar_image=_portrait(), model="expression")
    response = manager.get_response("user_123", "Hello!")
    assert response is not None
    _assert_video_matches_the_speech(response, "Hello!", response.download(tmp_path / "m.mp4"))
    assert manager.get_response("nobody", "Hello!") is None

    broke = RedisKeyStore(connect(farm_settings.redis_url or "")).create("tenant-broke", "docs")[1]
    ledger = RedisLedger(connect(farm_settings.redis_url or ""))
    ledger.set_plan("tenant-broke", "free")
    Metering(ledger).charge_once("tenant-broke", "spent", "test", 199)
    caught: list[str] = []
    for make in (
        lambda: bithuman.AvatarSession(avatar_id="A78WKV4515", api_secret="farm_wrong"),
        lambda: bithuman.AvatarSession(avatar_image=_portrait(), api_secret=broke, model="expression"),
        lambda: bithuman.AvatarSession(
            avatar_id="A78WKV4515",
            api_secret=secret,
            api_url="http://127.0.0.1:9",
            max_retries=1,
            backoff_s=0.01,
        ),
    ):
        try:
            avatar = make()
            avatar.generate_response("Test message")
        except bithuman.AuthenticationError as exc:
            caught.append(f"auth {exc.status}")
        except bithuman.QuotaExceededError as exc:
            caught.append(f"quota {exc.code}")
        except bithuman.NetworkError as exc:
            caught.append(f"network {exc.code}")
    assert caught == ["auth 401", "quota INSUFFICIENT_BALANCE", "network CONNECTION_ERROR"]
    with pytest.raises(bithuman.RequestError) as unknown:
        bithuman.AvatarSession(avatar_id="A78WKV4515", api_secret=secret).generate_response("hi")
    assert (unknown.value.status, unknown.value.code) == (404, "NOT_FOUND")
