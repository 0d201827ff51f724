"""Run one room session the way a worker does: SessionRunner + warm ModelPool + LiveKitRoomSession."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from farm import names
from farm.domain import ModelKind, Session
from farm.dynamics.worker import AttachedSession, WorkerDynamics
from farm.render.essence import EssenceRenderer
from farm.render.pool import ModelPool
from farm.sessions.memory import MemorySessionStore
from farm.sessions.runner import RunResult, SessionIO, SessionRunner
from farm.settings import Settings
from farm.stream.livekit import LiveKitRoomSession, RoomInput
from farm.stream.livekit.wiring import RoomSessionIo
from tests.e2e.conftest import LkBackend, avatar_source, new_room_session


@dataclass
class RoomRun:
    session_id: str
    store: MemorySessionStore
    task: asyncio.Task[RunResult]
    rooms: list[LiveKitRoomSession] = field(default_factory=list)

    @property
    def room(self) -> LiveKitRoomSession:
        return self.rooms[0]

    async def result(self, timeout_s: float = 20.0) -> RunResult:
        return await asyncio.wait_for(asyncio.shield(self.task), timeout_s)

    def session(self) -> Session:
        return self.store.get(self.session_id)


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
    """Claim and run a bitHuman-style room session (token minted by the 'plugin'); return once joined."""
    token = backend.token(
        avatar_identity,
        room_name,
        kind="agent",
        attributes={names.LK_ATTR_PUBLISH_ON_BEHALF: agent_identity, "agent_id": "A0E2ETEST1"},
    )
    store = MemorySessionStore()
    session, _ = store.create(new_room_session({"url": backend.url, "token": token}))
    lease = store.claim(session.id, "w-e2e", ttl_s=settings.lease_ttl_s)
    assert lease is not None
    source = avatar_source(pack)
    rooms: list[LiveKitRoomSession] = []

    room_io = RoomSessionIo(settings, pool, lambda _s: source)

    def io_factory(s: Session) -> SessionIO:
        io = room_io(s)
        assert isinstance(io.input, RoomInput)
        rooms.append(io.input.session)
        return io

    def attach(s: Session, gestures: Sequence[str], deliver: Callable[[str], None]) -> AttachedSession:
        assert dynamics is not None  # the same hook a worker's context gives its runners
        return dynamics.attach(
            session_id=s.id, tenant=s.tenant, agent_id=s.avatar_id, gestures=gestures, trigger=deliver
        )

    runner = SessionRunner(
        lease=lease,
        store=store,
        pool=pool,
        settings=settings,
        io_factory=io_factory,
        resolve_avatar=lambda _s: source,
        attach_dynamics=attach if dynamics is not None else None,
    )
    run = RoomRun(session.id, store, asyncio.create_task(runner.run()), rooms)
    deadline = time.monotonic() + 30
    while not (rooms and rooms[0].connected_at is not None):
        if run.task.done():
            raise AssertionError(f"the session ended before joining: {run.task.result()}")
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
