"""An in-process farm for room benchmarks: the real API app (over ASGI) in front of the real
WorkerRuntime (one event loop for every session, as in a worker process), in-memory stores, and a
LiveKit server: a local ``livekit-server`` started for the run, or one given by URL.

The Celery/Redis hop between the API and the worker (~3 ms) is not included; everything after it is
the production path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx

from farm.api.app import create_app
from farm.devtools.livekit_server import (
    DEV_API_KEY,
    DEV_API_SECRET,
    LocalLiveKitServer,
    default_node_ip,
    ensure_binary,
)
from farm.infra.blobs import BlobStore
from farm.kernel.contracts import RunSessionMessage, SessionTaskResult
from farm.kernel.domain import Agent, AgentStatus, ModelKind, Session
from farm.kernel.settings import Settings
from farm.render.essence import EssenceEngine, LoadedAvatar, build_pack, sample_portrait
from farm.render.pool import ModelPool
from farm.sessions.agents import MemoryAgentStore
from farm.sessions.memory import MemorySessionStore
from farm.sessions.registry import MemoryWorkerRegistry
from farm.stream.base import RenderInfo, SessionIO
from farm.stream.livekit import LiveKitRoomSession, RoomInput
from farm.stream.livekit.wiring import RoomSessionIo
from farm.tenancy.api_keys import MemoryKeyStore
from farm.worker.runtime import RuntimeParts, WorkerRuntime
from farm.worker.wiring import AvatarResolver

AGENT_ID = "A0BENCH001"


@dataclass(frozen=True)
class LiveKitTarget:
    """The server a bench talks to, and how its results are labelled (``against``)."""

    url: str
    api_key: str
    api_secret: str
    against: str


def add_livekit_args(parser: argparse.ArgumentParser) -> None:
    """``--livekit-url/--api-key/--api-secret``: a server to use instead of starting a local one."""
    parser.add_argument("--livekit-url", help="use this server instead of starting one")
    parser.add_argument("--api-key", default=DEV_API_KEY)
    parser.add_argument("--api-secret", default=DEV_API_SECRET)


@contextlib.contextmanager
def livekit_target(url: str | None, api_key: str, api_secret: str, log_dir: Path) -> Iterator[LiveKitTarget]:
    """``url`` as given, else a local livekit-server on this machine's non-loopback address."""
    if url:
        yield LiveKitTarget(url, api_key, api_secret, f"LiveKit server at {url}")
        return
    binary = ensure_binary(os.environ.get("LIVEKIT_SERVER_BIN"))
    server = LocalLiveKitServer(binary, default_node_ip(), log_path=log_dir / "livekit-server.log")
    with server:
        yield LiveKitTarget(server.url, server.api_key, server.api_secret, server.label)


class _NoBuilds:
    def submit(self, message: object) -> None:
        raise RuntimeError("no builds in this benchmark")


@dataclass
class RuntimeQueue:
    """The API's SessionQueue: hands each message to the runtime at once (a warm worker)."""

    runtime: WorkerRuntime
    futures: dict[str, Future[SessionTaskResult]] = field(default_factory=dict)

    def submit(self, message: RunSessionMessage) -> None:
        self.futures[message.session_id] = asyncio.run_coroutine_threadsafe(
            self.runtime.arun_session(message), self.runtime.loop
        )


@dataclass
class RoomFarm:
    settings: Settings
    store: MemorySessionStore
    runtime: WorkerRuntime
    queue: RuntimeQueue
    client: httpx.AsyncClient
    farm_secret: str
    avatar: LoadedAvatar
    app: Any
    rooms: dict[str, LiveKitRoomSession] = field(default_factory=dict)

    async def wait(self, session_id: str, timeout_s: float = 30.0) -> SessionTaskResult:
        return await asyncio.wait_for(asyncio.wrap_future(self.queue.futures[session_id]), timeout_s)

    def session(self, session_id: str) -> Session:
        return self.store.get(session_id)

    async def aclose(self) -> None:
        await self.client.aclose()
        self.runtime.stop()


def room_farm(tmp: Path, *, size: int, capacity: int, settings: Settings | None = None) -> RoomFarm:
    """Build the pack, prewarm the pool, start the runtime and the API app; nothing listens on a port."""
    settings = settings or Settings.model_validate({"data_dir": tmp / "var", "output_dir": tmp / "out"})
    blobs = BlobStore(settings.blob_dir)
    pack = build_pack(sample_portrait(), tmp / "pack", size=size)
    image_ref = blobs.put(cv2.imencode(".png", sample_portrait())[1].tobytes(), ".png")
    agents, keys, store = MemoryAgentStore(), MemoryKeyStore(), MemorySessionStore()
    _, farm_secret = keys.create("bench", "bench", concurrency_limit=100_000)
    agents.create(
        Agent(id=AGENT_ID, tenant="bench", status=AgentStatus.READY, image_ref=image_ref, pack_ref=str(pack))
    )
    resolver = AvatarResolver(settings, agents, blobs)
    hot = resolver.for_agent(AGENT_ID, ModelKind.ESSENCE)
    pool = ModelPool([ModelKind.ESSENCE], lambda _: EssenceEngine())
    pool.prewarm(timeout_s=120, hot=[(ModelKind.ESSENCE, hot)])
    registry = MemoryWorkerRegistry()
    rooms: dict[str, LiveKitRoomSession] = {}
    room_io = RoomSessionIo(settings)

    def io_factory(session: Session, render: RenderInfo) -> SessionIO:
        io = room_io(session, render)
        assert isinstance(io.input, RoomInput)
        rooms[session.id] = io.input.session
        return io

    parts = RuntimeParts(
        store=store,
        queue=_NoBuilds(),  # hand-backs never happen here
        registry=registry,
        agents=agents,
        pool=pool,
        io_factory=io_factory,
        resolve_avatar=resolver,
    )
    runtime = WorkerRuntime(
        settings, parts, worker_id="bench", hostname="local", queues=["essence"], capacity=capacity
    )
    runtime.prewarm()
    runtime.start()
    queue = RuntimeQueue(runtime)
    app = create_app(
        settings, store=store, queue=queue, keys=keys, agents=agents, registry=registry, builds=_NoBuilds()
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://farm")
    avatar = pool.get_avatar(ModelKind.ESSENCE, hot)
    assert isinstance(avatar, LoadedAvatar)
    return RoomFarm(settings, store, runtime, queue, client, farm_secret, avatar, app, rooms)
