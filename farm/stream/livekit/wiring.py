"""Session → SessionIO for room sessions, the way a worker's ``io_factory`` needs it.

``RoomSessionIo`` builds a ``LiveKitRoomSession`` from ``Session.livekit``, sized and with the gesture
list of the session's avatar (read from a probe renderer of the warm pool, closed at once).
``RoutedSessionIo`` sends sessions with a room to it and every other session to the file IO, so a
worker wires one factory:

    io_factory = RoutedSessionIo(file=FileSessionIo(settings, blobs),
                                 room=RoomSessionIo(settings, pool, resolve_avatar))
"""

from __future__ import annotations

from collections.abc import Callable

from farm.domain import Session
from farm.render.base import AvatarSource
from farm.render.pool import ModelPool
from farm.sessions.runner import SessionIO
from farm.settings import Settings
from farm.stream.livekit import room_output, room_session_for


class RoomSessionIo:
    """Session (with ``livekit``) → SessionIO whose input and sink are one LiveKitRoomSession."""

    def __init__(
        self, settings: Settings, pool: ModelPool, resolve_avatar: Callable[[Session], AvatarSource]
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._resolve = resolve_avatar

    def __call__(self, session: Session) -> SessionIO:
        probe = self._pool.open_session(session.model, self._resolve(session), f"{session.id}-probe")
        try:
            frame_size, gestures = probe.frame_size, probe.gestures
        finally:
            probe.close()
        room = room_session_for(session, self._settings, frame_size=frame_size, gestures=gestures)
        return SessionIO(input=room.input, sink=room.sink, output=room_output(room.join))


class RoutedSessionIo:
    """Room sessions to ``room``, the rest (uploaded clips) to ``file``."""

    def __init__(self, *, file: Callable[[Session], SessionIO], room: Callable[[Session], SessionIO]) -> None:
        self._file = file
        self._room = room

    def __call__(self, session: Session) -> SessionIO:
        return self._room(session) if session.livekit else self._file(session)
