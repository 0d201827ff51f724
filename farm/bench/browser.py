"""A headless browser viewer for the room benches: Debian's Chromium driven by Playwright.

The page is the farm's own viewer (``/view/{room}``, ``farm.api.routes.viewer``), served here from the
bench's in-process API app over HTTP. Its ``window.viewer`` reports, on the browser's wall clock
(``performance.timeOrigin + now``, epoch ms, the same clock as the host's ``time.time()``): the
first decoded frame (``requestVideoFrameCallback``), and while recording every presented frame as
a 64×64 thumbnail and the received audio's RMS every 5 ms (WebAudio ``AnalyserNode``).

Playwright is a dev dependency; its own browser download is never used (``executable_path``).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
INT16 = 32768.0


def chromium_available() -> bool:
    return shutil.which(CHROMIUM) is not None


class HttpApp:
    """An ASGI app on ``127.0.0.1:port`` (uvicorn in a daemon thread)."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.port = port
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, name="bench-http", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> HttpApp:
        self._thread.start()
        while not self._server.started:
            await asyncio.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@dataclass
class BrowserViewer:
    """One viewer page in the shared browser."""

    page: Any
    version: str

    async def open(self, url: str, timeout_s: float = 30.0) -> None:
        await self.page.goto(url)
        await self.page.wait_for_function(
            "window.viewer && (window.viewer.connectedAt !== null || window.viewer.error !== null)",
            timeout=timeout_s * 1000,
        )
        error = await self.page.evaluate("window.viewer.error")
        if error:
            raise RuntimeError(f"the browser could not join: {error}")

    async def first_frame_at(self, timeout_s: float = 30.0) -> float:
        """Epoch seconds of the first decoded avatar frame."""
        await self.page.wait_for_function("window.viewer.firstFrameEpoch > 0", timeout=timeout_s * 1000)
        return float(await self.page.evaluate("window.viewer.firstFrameEpoch")) / 1000.0

    async def video_subscribed_at(self) -> float | None:
        """Epoch seconds when the page subscribed to the avatar's video track (None: not yet)."""
        value = await self.page.evaluate("window.viewer.videoTrackEpoch || null")
        return float(value) / 1000.0 if value else None

    async def video_inbound(self) -> dict[str, Any] | None:
        """The video receiver's inbound-rtp counters (``pliCount``, ``keyFramesDecoded``, ...)."""
        value = await self.page.evaluate("window.viewer.videoInbound()")
        return dict(value) if value else None

    async def start_recording(self) -> None:
        await self.page.evaluate("window.viewer.startRecording()")

    async def stop_recording(self) -> tuple[list[tuple[float, np.ndarray]], list[tuple[float, float]]]:
        """(frames as (epoch s, 64×64 RGB thumbnail), audio RMS as (epoch s, int16-scale RMS))."""
        raw = await self.page.evaluate("window.viewer.stopRecording()")
        frames = [
            (t / 1000.0, np.asarray(rgb, dtype=np.uint8).reshape(64, 64, 3))
            for t, rgb in raw["frames"]
            if rgb
        ]
        levels = [(t / 1000.0, rms * INT16) for t, rms in raw["audio"]]
        return frames, levels

    async def codec(self) -> str | None:
        value = await self.page.evaluate("window.viewer.videoCodec()")
        return str(value) if value else None

    async def aclose(self) -> None:
        await self.page.close()


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium (Playwright); ``new_viewer(browser)`` opens pages in it."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def new_viewer(browser: Any) -> BrowserViewer:
    return BrowserViewer(await browser.new_page(), f"Chromium {browser.version}")
