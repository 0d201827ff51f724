"""A real HTTP server for integration tests: the production app (``build_app``) under uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from farm.api.app import build_app
from farm.api.server import uvicorn_config
from farm.infra.procs import free_port
from farm.kernel.settings import Settings


@dataclass(frozen=True)
class LiveApi:
    url: str
    settings: Settings
    app: FastAPI


@contextmanager
def live_api(settings: Settings, *, start_deadline_s: float = 20.0) -> Iterator[LiveApi]:
    """Serve ``build_app(settings)`` on a free loopback port in a thread; stop it on exit."""
    port = free_port()
    settings = settings.model_copy(update={"api_port": port, "api_host": "127.0.0.1"})
    app = build_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    end = time.monotonic() + start_deadline_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > end:
            raise AssertionError("the API server did not start")
        time.sleep(0.02)
    try:
        yield LiveApi(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        thread.join(10)
