"""e2e fixtures: a real LiveKit server, a warm Essence model pool, and helpers that run room sessions
through the real worker runtime.

The server, as ``lk_backend``:

* by default a real ``livekit-server`` (``farm.devtools.livekit_server``: ``LIVEKIT_SERVER_BIN``, ``PATH``, or
  built into the cache by ``make test``) started for the test run on 10.77.0.1 inside the private
  network namespace that ``scripts/netns-run`` creates (libwebrtc ignores loopback);
* any server given by LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET (LiveKit Cloud included).

Results say which: ``LkBackend.label`` names the server and its version.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from livekit import api

from farm.devtools.livekit_server import LocalLiveKitServer, ensure_binary
from farm.kernel.domain import ModelKind, Session
from farm.render.base import AvatarSource
from farm.render.essence import EssenceEngine, build_pack, sample_portrait
from farm.render.pool import ModelPool

NETNS_ADDRESS = "10.77.0.1"
PACK_SIZE = 256


@dataclass
class LkBackend:
    """Where rooms live for a test run, and how to act as the server's admin."""

    url: str
    api_key: str
    api_secret: str
    label: str

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

    def api(self) -> api.LiveKitAPI:
        return api.LiveKitAPI(self.url.replace("ws://", "http://"), self.api_key, self.api_secret)

    async def remove_participant(self, room: str, identity: str) -> None:
        """RoomService.RemoveParticipant (what the plugin's ``AvatarSession.aclose`` calls)."""
        async with self.api() as lkapi:
            await lkapi.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=identity))

    async def close_room(self, room: str) -> None:
        async with self.api() as lkapi:
            await lkapi.room.delete_room(api.DeleteRoomRequest(room=room))


def _local_server(log_dir: Path) -> Iterator[LkBackend]:
    netns = os.environ.get("FARM_NETNS", "")
    if netns != NETNS_ADDRESS:
        why = netns or "not inside the e2e network namespace"
        pytest.skip(f"the local livekit-server needs scripts/netns-run (libwebrtc ignores loopback): {why}")
    binary = ensure_binary(os.environ.get("LIVEKIT_SERVER_BIN"))
    server = LocalLiveKitServer(binary, NETNS_ADDRESS, log_path=log_dir / "livekit-server.log").start()
    print(f"\ne2e against {server.label} at {server.url}")
    try:
        yield LkBackend(server.url, server.api_key, server.api_secret, f"against {server.label}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lk_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LkBackend]:
    url, key, secret = (os.environ.get(n) for n in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"))
    if url and key and secret:
        yield LkBackend(url, key, secret, f"against the LiveKit server at {url}")
        return
    yield from _local_server(tmp_path_factory.mktemp("livekit"))


@pytest.fixture(scope="session", autouse=True)
def _stop_e2e_workers() -> Iterator[None]:
    """The harness keeps one runtime per Settings for the run; stop them at its end."""
    yield
    from tests.e2e.harness import stop_e2e_workers

    stop_e2e_workers()


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
