"""e2e fixtures: a LiveKit backend (the project's LiveKit-protocol model, or a real server), a warm
Essence model pool, and helpers that run a room session through the real SessionRunner.

Backends, as ``lk_backend`` parameters:

* ``model`` — ``farm.testing.lk_model`` on 10.77.0.1 inside the private network namespace that
  ``scripts/netns-run`` creates (libwebrtc ignores loopback). Results are "against a LiveKit-protocol
  model". Outside that namespace the parameter is skipped with the reason.
* ``livekit`` — a real server from LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET; skipped when
  they are unset.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from livekit import api

from farm.domain import ModelKind, Session
from farm.render.base import AvatarSource
from farm.render.essence import EssenceEngine, build_pack, sample_portrait
from farm.render.pool import ModelPool
from farm.testing.lk_model import LiveKitModel

NETNS_ADDRESS = "10.77.0.1"
PACK_SIZE = 256


@dataclass
class LkBackend:
    """Where rooms live for a test run, and how to act as the server's admin."""

    kind: str  # "model" | "livekit"
    url: str
    api_key: str
    api_secret: str
    label: str
    model: LiveKitModel | None = None
    model_loop: asyncio.AbstractEventLoop | None = None

    def token(
        self, identity: str, room: str, *, kind: str = "standard", attributes: dict[str, str] | None = None
    ) -> str:
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_name(identity)
            .with_kind(kind)  # type: ignore[arg-type]
            .with_grants(api.VideoGrants(room_join=True, room=room))
        )
        if attributes:
            token = token.with_attributes(attributes)
        return token.to_jwt()

    async def remove_participant(self, room: str, identity: str) -> None:
        """RoomService.RemoveParticipant (what the plugin's ``AvatarSession.aclose`` calls)."""
        if self.model is not None and self.model_loop is not None:
            fut = asyncio.run_coroutine_threadsafe(
                self.model.remove_participant(room, identity), self.model_loop
            )
            await asyncio.wrap_future(fut)
            return
        async with api.LiveKitAPI(self.url, self.api_key, self.api_secret) as lkapi:
            await lkapi.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=identity))

    async def close_room(self, room: str) -> None:
        if self.model is not None and self.model_loop is not None:
            fut = asyncio.run_coroutine_threadsafe(self.model.close_room(room), self.model_loop)
            await asyncio.wrap_future(fut)
            return
        async with api.LiveKitAPI(self.url, self.api_key, self.api_secret) as lkapi:
            await lkapi.room.delete_room(api.DeleteRoomRequest(room=room))


def _model_backend() -> Iterator[LkBackend]:
    netns = os.environ.get("FARM_NETNS", "")
    if netns != NETNS_ADDRESS:
        why = netns or "not inside the e2e network namespace"
        pytest.skip(f"LiveKit-protocol model needs scripts/netns-run (libwebrtc ignores loopback): {why}")
    loop = asyncio.new_event_loop()
    model = LiveKitModel(
        NETNS_ADDRESS, 0, api_key="devkey", api_secret="e2e-secret-long-enough-for-hs256-0123456789"
    )
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(model.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="lk-model", daemon=True)
    thread.start()
    if not started.wait(10):
        pytest.fail("the LiveKit-protocol model did not start")
    try:
        yield LkBackend(
            kind="model",
            url=model.url,
            api_key=model.api_key,
            api_secret=model.api_secret,
            label="against a LiveKit-protocol model",
            model=model,
            model_loop=loop,
        )
    finally:
        asyncio.run_coroutine_threadsafe(model.aclose(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def _real_backend() -> Iterator[LkBackend]:
    url, key, secret = (os.environ.get(n) for n in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"))
    if not (url and key and secret):
        pytest.skip("no real LiveKit server: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
    yield LkBackend(
        kind="livekit", url=url, api_key=key, api_secret=secret, label=f"against LiveKit at {url}"
    )


@pytest.fixture(scope="session", params=["model", "livekit"])
def lk_backend(request: pytest.FixtureRequest) -> Iterator[LkBackend]:
    yield from (_model_backend() if request.param == "model" else _real_backend())


@pytest.fixture(scope="session")
def essence_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pack(sample_portrait(), tmp_path_factory.mktemp("e2e-essence") / "pack", size=PACK_SIZE)


@pytest.fixture(scope="session")
def warm_pool(essence_pack: Path) -> Iterator[ModelPool]:
    """A prewarmed Essence pool with the test avatar loaded, like a READY worker process."""
    pool = ModelPool([ModelKind.ESSENCE], lambda _: EssenceEngine())
    pool.prewarm(timeout_s=120, hot=[(ModelKind.ESSENCE, avatar_source(essence_pack))])
    try:
        yield pool
    finally:
        pool.close()


def avatar_source(pack: Path) -> AvatarSource:
    return AvatarSource(key="A0E2ETEST1", pack_path=pack)


def new_room_session(livekit: dict[str, str]) -> Session:
    return Session(
        id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE, avatar_id="A0E2ETEST1", livekit=livekit
    )
