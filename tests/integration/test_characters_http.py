"""Characters end to end: real API over HTTP, real build worker (Essence builder), real essence worker.

A cat registered in animal mode (multipart, mouth and eyes given) and a full-body portrait (JSON,
framing ``full``) are built by the build worker, then speak into MP4s rendered by the real Essence
engine. The cat's lip-sync is measured on the decoded video: the pixel change of the mouth region
against the pack's own base frames follows the loudness of the speech.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import av
import httpx
import numpy as np
import pytest
import redis
from PIL import Image
from skimage import data

from farm.bench.characters import CAT_EYES, CAT_MOUTH_BOX, full_body_canvas
from farm.client import AvatarSession, RequestError
from farm.devtools.demo import wav_bytes
from farm.infra.espeak import Voice
from farm.kernel import names
from farm.kernel.settings import Settings
from farm.render.essence import load_pack
from farm.render.speech.training.corpus import speak
from farm.render.speech.visemes import TARGET_OPEN
from farm.tenancy.api_keys import RedisKeyStore
from tests.integration.api_support import LiveApi, live_api
from tests.integration.conftest import REAL_ENTRY, StartWorker

pytestmark = pytest.mark.integration


@pytest.fixture
def farm_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url, "essence_size": 320})


@pytest.fixture
def api(farm_settings: Settings) -> Iterator[LiveApi]:
    with live_api(farm_settings) as server:
        yield server


@pytest.fixture
def secret(redis_client: redis.Redis) -> str:
    return RedisKeyStore(redis_client).create("tenant-a", "a")[1]


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _speech() -> tuple[np.ndarray, bytes]:
    """A spoken sentence (espeak-ng) and the opening its visemes ask for, per 40 ms frame."""
    utt = speak("Mama made a lovely apple pie, and we ate it all by the window.", Voice("en-us"), 0.3)
    return TARGET_OPEN[utt.targets.argmax(axis=1)], wav_bytes(np.round(utt.audio * 32767.0), 16_000)


def _video_frames(path: str) -> list[np.ndarray]:
    with av.open(path) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_cat_in_animal_mode_is_built_by_the_worker_and_lip_syncs_in_its_video(
    api: LiveApi, farm_settings: Settings, secret: str, start_worker: StartWorker
) -> None:
    start_worker(farm_settings, names.QUEUE_BUILD, concurrency=1, entry=REAL_ENTRY)
    start_worker(farm_settings, names.QUEUE_ESSENCE, entry=REAL_ENTRY)
    form = {"mode": "animal", "framing": "full", "mouth_box": str(CAT_MOUTH_BOX), "eyes": str(CAT_EYES)}
    files = {"image": ("chelsea.png", _png(data.chelsea()), "image/png")}
    created = httpx.post(f"{api.url}/v1/agents", files=files, data=form, headers={"api-secret": secret})
    assert created.status_code == 201, created.text
    with AvatarSession(api_url=api.url, api_secret=secret, max_retries=0) as farm:
        agent = farm.wait_agent(created.json()["agent_id"], deadline_s=120)
        assert agent.status == "ready", agent.raw
        assert (agent.raw["mode"], agent.raw["framing"]) == ("animal", "full")
        asked, wav = _speech()
        session = farm.create_session(audio=wav, avatar_id=agent.agent_id)
        done = farm.wait_session(session.session_id, deadline_s=120)
    assert done.status == "ENDED", done.raw["failure"]
    frames = _video_frames(str(done.raw["output"]))
    assert frames[0].shape == (212, 320, 3)  # 451x300 kept whole, 320 on its long side, even sides

    pack = load_pack(farm_settings.pack_dir / agent.agent_id, verify=False)
    assert pack.manifest["build"]["mouth_box"] == CAT_MOUTH_BOX
    x0, y0, x1, y1 = pack.manifest["mouth"]["region"]
    idle = pack.clip_length("idle")
    change = [
        float(
            np.abs(
                f[y0:y1, x0:x1].astype(np.float32) - pack.base_frame("idle", i % idle)[y0:y1, x0:x1]
            ).mean()
        )
        for i, f in enumerate(frames)
    ]
    n = min(len(change), len(asked))
    assert n >= len(asked) - 1  # every frame of the sentence is in the video
    assert np.corrcoef(change[:n], asked[:n])[0, 1] >= 0.4  # the mouth follows the spoken visemes


def test_a_full_body_portrait_keeps_its_whole_frame_in_the_video(
    api: LiveApi, farm_settings: Settings, secret: str, start_worker: StartWorker
) -> None:
    start_worker(farm_settings, names.QUEUE_BUILD, concurrency=1, entry=REAL_ENTRY)
    start_worker(farm_settings, names.QUEUE_ESSENCE, entry=REAL_ENTRY)
    with AvatarSession(api_url=api.url, api_secret=secret, max_retries=0) as farm:
        created = farm.create_agent(_png(full_body_canvas()), framing="full")
        agent = farm.wait_agent(created.agent_id, deadline_s=120)
        assert agent.status == "ready", agent.raw
        session = farm.create_session(audio=_speech()[1], avatar_id=agent.agent_id)
        done = farm.wait_session(session.session_id, deadline_s=120)
    assert done.status == "ENDED", done.raw["failure"]
    frames = _video_frames(str(done.raw["output"]))
    assert frames[0].shape == (320, 224, 3)  # 448x640 kept whole, 320 on its long side


def test_animal_mode_over_http_refuses_the_expression_model_and_missing_points(
    api: LiveApi, secret: str, redis_client: redis.Redis
) -> None:
    image = _png(data.chelsea())
    with AvatarSession(api_url=api.url, api_secret=secret, max_retries=0) as farm:
        for options, code in (
            ({"mode": "animal", "mouth_box": CAT_MOUTH_BOX, "model": "expression"}, "MODE_NOT_SUPPORTED"),
            ({"mode": "animal"}, "POINTS_REQUIRED"),
            ({"mode": "animal", "mouth_box": [236, 266, 286, 320]}, "POINTS_OUTSIDE_IMAGE"),
        ):
            with pytest.raises(RequestError) as caught:
                farm.create_agent(image, **options)
            assert caught.value.code == code
        listed = httpx.get(f"{api.url}/v1/agents", headers={"api-secret": secret}).json()
    assert listed["pagination"]["total"] == 0
    assert int(redis_client.llen(names.QUEUE_BUILD)) == 0  # type: ignore[arg-type]
