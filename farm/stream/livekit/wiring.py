"""Session → SessionIO for room sessions, the way a worker's ``io_factory`` needs it.

``RoomSessionIo`` builds a ``LiveKitRoomSession`` from ``Session.livekit``, sized and with the gesture
list of the renderer the runner already opened (``RenderInfo``).
"""

from __future__ import annotations

from farm.kernel.domain import Session
from farm.kernel.settings import Settings
from farm.stream.base import RenderInfo, SessionIO
from farm.stream.livekit import room_output, room_session_for


class RoomSessionIo:
    """Session (with ``livekit``) → SessionIO whose input and sink are one LiveKitRoomSession."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def __call__(self, session: Session, render: RenderInfo) -> SessionIO:
        room = room_session_for(
            session,
            self._settings,
            frame_size=render.frame_size,
            gestures=render.gestures,
            poster=render.poster,
        )
        return SessionIO(input=room.input, sink=room.sink, output=room_output(room.join))
