"""A browser watches the avatar: Debian's Chromium (headless, driven by Playwright) opens the farm's
viewer page for a live room on the real livekit-server and really decodes the avatar: its frames
look like the avatar's idle frames (a canvas pixel check that a grey frame fails), and the agent's
speech arrives as audio energy at a WebAudio analyser. Browser timings and the negotiated video
codec are printed (measurements belong to ``farm bench room``, not to assertions)."""

from __future__ import annotations

import asyncio
import shutil
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from farm.api.app import create_app
from farm.api.routes.viewer import VENDOR_DIR
from farm.bench.browser import CHROMIUM, CHROMIUM_FLAGS
from farm.infra.blobs import BlobStore
from farm.infra.procs import free_port
from farm.kernel.settings import Settings
from farm.render.pool import ModelPool
from farm.sessions.agents import MemoryAgentStore
from farm.sessions.registry import MemoryWorkerRegistry
from farm.tenancy.api_keys import MemoryKeyStore
from tests.e2e.actors import Agent, tone
from tests.e2e.conftest import LkBackend
from tests.e2e.harness import RoomRun, distance_to_avatar, idle_references, start_avatar

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

AVATAR_LIKE = 12.0  # mean abs difference (0-255) to the nearest idle frame, as in test_room_session


class _NoBuilds:
    def submit(self, message: object) -> None:
        raise RuntimeError("no builds here")


async def _serve(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="viewer-api", daemon=True)
    thread.start()
    while not server.started:
        await asyncio.sleep(0.02)
    return server, thread


@pytest.fixture
async def watched_room(
    lk_backend: LkBackend, warm_pool: ModelPool, essence_pack: Path, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[RoomRun, Agent, str]]:
    """A live avatar with its agent, and a viewer link minted by the farm's API over HTTP."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian's chromium is not installed: run `make install` (apt-get install chromium)")
    if not (VENDOR_DIR / "livekit-client.umd.js").is_file():
        pytest.fail("livekit-client is not installed: run `make install` (npm ci in web/)")
    name = f"browser-{uuid.uuid4().hex[:8]}"
    agent = Agent(lk_backend, name)
    await agent.connect()
    run = await start_avatar(lk_backend, warm_pool, essence_pack, settings, name)
    cfg = settings.model_copy(
        update={
            "livekit_url": lk_backend.url,
            "livekit_api_key": lk_backend.api_key,
            "livekit_api_secret": lk_backend.api_secret,
        }
    )
    keys = MemoryKeyStore()
    _, secret = keys.create("t", "viewer-test")  # the harness's sessions belong to tenant "t"
    app = create_app(
        cfg,
        store=run.store,
        queue=run.worker.queue,
        keys=keys,
        agents=MemoryAgentStore(),
        registry=MemoryWorkerRegistry(),
        builds=_NoBuilds(),
        blobs=BlobStore(cfg.blob_dir),
    )
    port = free_port()
    server, thread = await _serve(app, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            link = await client.post(f"/v1/rooms/{name}/viewer", headers={"api-secret": secret})
            assert link.status_code == 200, link.text
            other = await client.post("/v1/rooms/nobodys-room/viewer", headers={"api-secret": secret})
            assert other.status_code == 404  # only rooms where the caller has a live avatar
        yield run, agent, link.json()["viewer_url"]
    finally:
        server.should_exit = True
        thread.join(10)
        await agent.aclose()
        await run.aclose()
        await asyncio.wait_for(run.task, 20)


async def test_chromium_decodes_the_avatar_and_hears_its_speech(
    watched_room: tuple[RoomRun, Agent, str], warm_pool: ModelPool, essence_pack: Path, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    _, agent, viewer_url = watched_room
    refs = idle_references(warm_pool, essence_pack)
    async with async_playwright() as pw:
        # Playwright gives every launch a fresh, empty user-data-dir of its own.
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(viewer_url)
            await page.wait_for_function("window.viewer && window.viewer.frames > 25", timeout=30_000)
            snapshot = await page.evaluate("window.viewer.snapshot(64)")
            thumb = np.asarray(snapshot, dtype=np.uint8).reshape(64, 64, 3)
            assert distance_to_avatar(thumb, refs) < AVATAR_LIKE  # the avatar, decoded, in the page
            assert distance_to_avatar(np.full_like(thumb, 128), refs) > AVATAR_LIKE  # the check can fail

            await agent.say(tone(1.5, 24_000), 24_000)
            await page.wait_for_function("window.viewer.audioPeakRms > 0.05", timeout=20_000)
            stats = await page.evaluate(
                "({connected: viewer.connectedAt - viewer.startedAt, firstFrame: viewer.firstFrameAt -"
                " viewer.startedAt, frames: viewer.frames, size: [viewer.width, viewer.height],"
                " peakRms: viewer.audioPeakRms})"
            )
            codec = await page.evaluate("window.viewer.videoCodec()")
            print(f"\nbrowser: Chromium {browser.version} codec={codec} {stats}")
            assert codec in ("video/H264", "video/VP8", "video/VP9", "video/AV1")
            assert stats["size"] == [256, 256]
        finally:
            await browser.close()
