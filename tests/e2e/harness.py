"""Run room sessions the way a worker does: the real WorkerRuntime (one loop for every session of the
"process"), a warm ModelPool and LiveKitRoomSession, fed by the in-process stub worker.

One runtime per distinct Settings object is kept for the whole test run (they share the warm pool),
like one worker process that serves every test's rooms.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from farm.dynamics.worker import AttachedSession, WorkerDynamics
from farm.kernel import names
from farm.kernel.contracts import RunSessionMessage, SessionTaskResult
from farm.kernel.domain import ModelKind, Session
from farm.kernel.settings import Settings
from farm.render.essence import EssenceRenderer
from farm.render.pool import ModelPool
from farm.sessions.agents import MemoryAgentStore
from farm.sessions.memory import MemorySessionStore
from farm.sessions.registry import MemoryWorkerRegistry
from farm.stream.base import RenderInfo, SessionIO
from farm.stream.livekit import LiveKitRoomSession, RoomInput
from farm.stream.livekit.wiring import RoomSessionIo
from farm.worker.runtime import RuntimeParts, WorkerRuntime
from tests.e2e.conftest import LkBackend, avatar_source, new_room_session
from tests.support.stub_worker import StubQueue, StubWorker

RUNTIME_CAPACITY = 8


@dataclass
class RunView:
    """How a session's run ended: the task result and the session as the store has it."""

    task: SessionTaskResult
    session: Session | None


class E2eWorker:
    """A stub worker around the real runtime; records each session's room and dynamics hook."""

    def __init__(self, settings: Settings, pool: ModelPool, pack: Path) -> None:
        self.store = MemorySessionStore()
        self.queue = StubQueue()
        self.rooms: dict[str, LiveKitRoomSession] = {}
        self.dynamics: dict[str, WorkerDynamics] = {}
        room_io = RoomSessionIo(settings)
        source = avatar_source(pack)

        def io_factory(s: Session, render: RenderInfo) -> SessionIO:
            io = room_io(s, render)
            assert isinstance(io.input, RoomInput)
            self.rooms[s.id] = io.input.session
            return io

        def attach(
            s: Session, gestures: Sequence[str], deliver: Callable[[str], None]
        ) -> AttachedSession | None:
            dynamics = self.dynamics.get(s.id)  # the same hook a worker's runtime gives its runners
            if dynamics is None:
                return None
            return dynamics.attach(
                session_id=s.id, tenant=s.tenant, agent_id=s.avatar_id, gestures=gestures, trigger=deliver
            )

        parts = RuntimeParts(
            store=self.store,
            queue=self.queue,
            registry=MemoryWorkerRegistry(),
            agents=MemoryAgentStore(),
            pool=pool,
            io_factory=io_factory,
            resolve_avatar=lambda _s: source,
            attach_dynamics=attach,
            close_pool_on_stop=False,  # the warm pool is shared by the whole test run
        )
        self.runtime = WorkerRuntime(
            settings, parts, worker_id="w-e2e", hostname="e2e", queues=["essence"], capacity=RUNTIME_CAPACITY
        )
        self.worker = StubWorker(self.runtime, self.queue).start()

    def stop(self) -> None:
        self.worker.stop()


_WORKERS: dict[int, E2eWorker] = {}


def e2e_worker(settings: Settings, pool: ModelPool, pack: Path) -> E2eWorker:
    """The runtime for ``settings`` (one per Settings object for the whole run)."""
    worker = _WORKERS.get(id(settings))
    if worker is None:
        worker = _WORKERS[id(settings)] = E2eWorker(settings, pool, pack)
    return worker


def stop_e2e_workers() -> None:
    while _WORKERS:
        _WORKERS.popitem()[1].stop()


@dataclass
class RoomRun:
    session_id: str
    worker: E2eWorker

    @property
    def room(self) -> LiveKitRoomSession:
        return self.worker.rooms[self.session_id]

    @property
    def store(self) -> MemorySessionStore:
        return self.worker.store

    @property
    def task(self) -> asyncio.Future[SessionTaskResult]:
        return asyncio.wrap_future(self.worker.worker.results[self.session_id])

    async def result(self, timeout_s: float = 20.0) -> RunView:
        task = await asyncio.wait_for(asyncio.shield(self.task), timeout_s)
        return RunView(task, self.session())

    def session(self) -> Session:
        return self.store.get(self.session_id)

    async def aclose(self) -> None:
        """Leave the room (on the runtime's loop, where the room lives)."""
        loop = self.worker.runtime.loop
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.room.aclose(), loop))


async def start_avatar(
    backend: LkBackend,
    pool: ModelPool,
    pack: Path,
    settings: Settings,
    room_name: str,
    *,
    agent_identity: str = "agent-1",
    avatar_identity: str = names.DEFAULT_AVATAR_IDENTITY,
    dynamics: WorkerDynamics | None = None,
) -> RoomRun:
    """Queue a bitHuman-style room session (token minted by the 'plugin'); return once it joined."""
    token = backend.token(
        avatar_identity,
        room_name,
        kind="agent",
        attributes={names.LK_ATTR_PUBLISH_ON_BEHALF: agent_identity, "agent_id": "A0E2ETEST1"},
    )
    worker = e2e_worker(settings, pool, pack)
    livekit = {"url": backend.url, "token": token, "room": room_name}
    session, _ = worker.store.create(new_room_session(livekit))
    if dynamics is not None:
        worker.dynamics[session.id] = dynamics
    worker.queue.submit(RunSessionMessage(session_id=session.id, model=ModelKind.ESSENCE))
    run = RoomRun(session.id, worker)
    deadline = time.monotonic() + 30
    while not (session.id in worker.rooms and worker.rooms[session.id].connected_at is not None):
        results = worker.worker.results
        if session.id in results and results[session.id].done():
            raise AssertionError(f"the session ended before joining: {run.session().failure}")
        if time.monotonic() > deadline:
            raise TimeoutError("the avatar did not join within 30 s")
        await asyncio.sleep(0.02)
    return run


def idle_references(pool: ModelPool, pack: Path, count: int = 60) -> list[np.ndarray]:
    """64x64 thumbnails of the avatar's own idle frames, to recognise what the viewer receives."""
    import cv2

    renderer = EssenceRenderer(pool.get_avatar(ModelKind.ESSENCE, avatar_source(pack)), "refs")  # type: ignore[arg-type]
    refs = []
    for i in range(count * 4):
        frame = renderer.next_frame()
        if i % 4 == 0:
            refs.append(cv2.resize(frame.image, (64, 64), interpolation=cv2.INTER_AREA))
    return refs


def distance_to_avatar(thumb: np.ndarray, refs: list[np.ndarray]) -> float:
    """Mean absolute difference (0-255) to the closest idle reference frame."""
    return min(float(np.mean(np.abs(thumb.astype(np.int16) - ref.astype(np.int16)))) for ref in refs)
