"""The farm in a LiveKit room: token handling, the avatar's publisher and the remote-avatar protocol.

A worker builds one ``LiveKitRoomSession`` per room session (``room_session_for``) and hands its
``input`` (SessionInput) and ``sink`` (FrameSink) to the SessionRunner.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from farm.kernel.domain import RoomJoin, Session
from farm.kernel.errors import ValidationError
from farm.kernel.settings import Settings
from farm.stream.livekit.session import LiveKitRoomSession, RoomInput, RoomSink
from farm.stream.livekit.token import join_for_session, mint_token


def room_session_for(
    session: Session,
    settings: Settings,
    *,
    frame_size: tuple[int, int],
    gestures: Sequence[str] | None = None,
    poster: np.ndarray | None = None,
) -> LiveKitRoomSession:
    """The room session of ``session`` (``Session.livekit``: its parsed RoomJoin)."""
    if not session.livekit:
        raise ValidationError("this session has no LiveKit room", session_id=session.id)
    join = join_for_session(session.livekit, settings)
    return LiveKitRoomSession(
        join, settings, frame_size=frame_size, gestures=gestures, session_id=session.id, poster=poster
    )


def room_output(join: RoomJoin) -> str:
    """What ``Session.output`` records for a room session."""
    return f"livekit://{join.room}/{join.identity}"


__all__ = [
    "LiveKitRoomSession",
    "RoomInput",
    "RoomJoin",
    "RoomSink",
    "join_for_session",
    "mint_token",
    "room_output",
    "room_session_for",
]
