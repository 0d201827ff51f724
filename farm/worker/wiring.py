"""Worker-side wiring: which avatar a session animates, which input/sink it uses, and the Redis-backed
WorkerRuntime of a worker process (``redis_runtime``).

Kept out of the Celery layer so it can be tested (and reused by ``farm demo`` and the benches)
without a broker.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from farm.infra.blobs import BlobStore
from farm.kernel.domain import AgentStatus, ModelKind, Session
from farm.kernel.errors import AgentNotReady, ValidationError
from farm.kernel.settings import Settings
from farm.render.base import AvatarSource
from farm.sessions.base import AgentStore
from farm.stream.base import RenderInfo, SessionIO
from farm.stream.file_input import FileInput
from farm.stream.mp4 import Mp4Sink

log = logging.getLogger(__name__)


def pack_path(settings: Settings, pack_ref: str) -> Path:
    """Where an agent's pack lives: ``pack_ref`` is relative to ``settings.data_dir`` (or absolute)."""
    path = Path(pack_ref)
    return path if path.is_absolute() else settings.data_dir / path


class AvatarResolver:
    """Session → AvatarSource: an agent's Essence pack, or an uploaded face image."""

    def __init__(self, settings: Settings, agents: AgentStore, blobs: BlobStore) -> None:
        self._settings = settings
        self._agents = agents
        self._blobs = blobs

    def __call__(self, session: Session) -> AvatarSource:
        if session.avatar_id is not None:
            return self.for_agent(session.avatar_id, session.model, image_ref=session.image_ref)
        if session.image_ref is None:
            raise ValidationError("the session names neither an agent nor an image")
        key = _image_key(session.image_ref)
        image_path = self._blobs.path(session.image_ref)
        if session.model is ModelKind.ESSENCE:  # an ad-hoc portrait: build its pack once, keep it
            pack = ensure_image_pack(self._settings, image_path, key)
            return AvatarSource(key=key, pack_path=pack, image_path=image_path)
        return AvatarSource(key=key, image_path=image_path)

    def for_agent(self, agent_id: str, model: ModelKind, *, image_ref: str | None = None) -> AvatarSource:
        agent = self._agents.get(agent_id)
        image_path = self._blobs.path(image_ref or agent.image_ref)
        if model is ModelKind.EXPRESSION:
            return AvatarSource(key=agent.id, image_path=image_path)
        if agent.status is not AgentStatus.READY or agent.pack_ref is None:
            raise AgentNotReady(f"agent {agent.id} has no built pack ({agent.status.value})")
        return AvatarSource(
            key=agent.id, pack_path=pack_path(self._settings, agent.pack_ref), image_path=image_path
        )


def ensure_image_pack(settings: Settings, image_path: Path, key: str) -> Path:
    """The Essence pack of an uploaded portrait, built on first use under ``settings.pack_dir``.

    Built in a temporary directory and renamed into place, so concurrent builders never expose a
    half-written pack (the loser of the race discards its copy).
    """
    target = settings.pack_dir / key
    if target.exists():
        return target
    from farm.infra.media import load_image_rgb
    from farm.render.essence.builder import build_pack

    settings.pack_dir.mkdir(parents=True, exist_ok=True)
    image = load_image_rgb(image_path, settings.max_image_pixels)
    with tempfile.TemporaryDirectory(dir=settings.pack_dir, prefix=".build-") as tmp:
        built = build_pack(image, Path(tmp) / "pack", size=settings.essence_size)
        with contextlib.suppress(OSError):  # another worker finished first: use its pack
            os.rename(built, target)
    return target


def _image_key(image_ref: str) -> str:
    return "img-" + hashlib.sha256(image_ref.encode()).hexdigest()[:16]


class FileSessionIo:
    """The uploaded clip as input, an MP4 under ``settings.output_dir`` as the sink."""

    def __init__(self, settings: Settings, blobs: BlobStore) -> None:
        self._settings = settings
        self._blobs = blobs

    def output_path(self, session_id: str) -> Path:
        return self._settings.output_dir / f"{session_id}.mp4"

    def __call__(self, session: Session, _render: RenderInfo | None = None) -> SessionIO:
        if session.audio_ref is None:
            raise ValidationError("this worker renders file-input sessions only (an uploaded clip)")
        out = self.output_path(session.id)
        clip = self._blobs.path(session.audio_ref)
        source = FileInput(
            clip,
            max_s=self._settings.max_audio_s,
            max_mb=self._settings.max_audio_mb,
            max_sample_rate_hz=self._settings.max_audio_sample_rate_hz,
        )
        return SessionIO(input=source, sink=Mp4Sink(out, fps=self._settings.fps), output=str(out))


class WorkerSessionIo:
    """The worker's io_factory: room sessions (``Session.livekit``) join LiveKit, the rest record an MP4.

    The LiveKit wiring is imported by ``warm()`` at prewarm (in the process that runs the sessions,
    never a prefork parent: the LiveKit FFI starts native threads, which must not exist before fork),
    else on the first room session.
    """

    def __init__(self, settings: Settings, blobs: BlobStore) -> None:
        self._settings = settings
        self._file = FileSessionIo(settings, blobs)
        self._room: Callable[[Session, RenderInfo], SessionIO] | None = None

    def __call__(self, session: Session, render: RenderInfo) -> SessionIO:
        if not session.livekit:
            return self._file(session, render)
        return self.warm()(session, render)

    def warm(self) -> Callable[[Session, RenderInfo], SessionIO]:
        """The room wiring, imported on first use. Left to the first room session, the import ran on
        the event loop every live session of the process shares, and held it ~0.35-0.5 s (livekit.api
        pulls in aiohttp, which builds an SSL context as it loads): that session joined later and
        the others' audio paused."""
        if self._room is None:
            from farm.stream.livekit.wiring import RoomSessionIo

            self._room = RoomSessionIo(self._settings)
        return self._room
