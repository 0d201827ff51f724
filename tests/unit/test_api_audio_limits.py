"""The API measures audio uploads off its event loop, a bounded number at once, within limits that
are checked before any decoding: ``/healthz`` answers while large uploads are being measured."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from farm.infra import media
from tests.support.helpers import flac_bytes
from tests.unit.api_support import ApiHarness, b64

pytestmark = pytest.mark.unit

UPLOADS = 5
HELD_S = 20.0  # generous: only a broken API (decoding on its loop) ever waits this long


class HeldMeasure:
    """Wraps ``media.measure_audio``: each call announces itself, then waits for ``release``."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self._real = media.measure_audio

    def __call__(self, source: bytes | Path, limits: media.AudioLimits) -> float:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        self.started.release()
        self.release.wait(HELD_S)  # blocks whichever thread measures: never the event loop's, we hope
        try:
            return self._real(source, limits)
        finally:
            with self._lock:
                self.active -= 1


async def test_healthz_answers_while_large_uploads_are_being_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = ApiHarness.build(tmp_path, api_decode_concurrency=2)
    held = HeldMeasure()
    monkeypatch.setattr(media, "measure_audio", held)
    body = api.session_body(avatar_id=api.agent().id, audio=b64(flac_bytes(60.0, 192_000)))
    transport = httpx.ASGITransport(app=api.client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://farm") as http:
        uploads = [
            asyncio.create_task(http.post("/v1/sessions", json=body, headers=api.headers()))
            for _ in range(UPLOADS)
        ]
        for _ in range(2):  # both decode slots taken
            assert await asyncio.to_thread(held.started.acquire, True, HELD_S)
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert not any(upload.done() for upload in uploads)  # answered while every upload waits
        held.release.set()
        responses: list[Any] = await asyncio.gather(*uploads)
    assert [r.status_code for r in responses] == [201] * UPLOADS
    assert held.peak == 2  # never more than api_decode_concurrency at once


def test_a_sample_rate_over_the_limit_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path, max_audio_sample_rate_hz=48_000)
    body = api.session_body(avatar_id=api.agent().id, audio=b64(flac_bytes(0.5, 96_000)))
    response = api.client.post("/v1/sessions", json=body, headers=api.headers())
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "96000 Hz, over the 48000 Hz limit" in response.json()["error"]["message"]
    assert api.stored_nothing()


def test_a_long_clip_in_a_small_upload_is_refused_by_its_decoded_length(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path, max_audio_s=30.0)
    audio = flac_bytes(40.0, 44_100)
    assert len(audio) < 2 * 1024 * 1024  # small compressed upload, long clip
    body = api.session_body(avatar_id=api.agent().id, audio=b64(audio))
    response = api.client.post("/v1/sessions", json=body, headers=api.headers())
    assert response.status_code == 413, response.text
    assert "longer than the 30 s limit" in response.json()["error"]["message"]
    assert api.stored_nothing()
