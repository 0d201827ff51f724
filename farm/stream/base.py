"""Seams between a running session and the outside world: where speech comes from, where frames go.

A file-input session reads one clip (``farm.sessions.runner`` builds its input from the upload) and
writes an MP4; a room session reads the agent's ``lk.audio_stream`` and writes to LiveKit tracks.
The SessionRunner drives both the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from farm.render.base import AvatarFrame


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """PCM of the current speech segment (int16 mono or interleaved ``channels``) at ``sample_rate``."""

    pcm: np.ndarray
    sample_rate: int
    channels: int = 1


@dataclass(frozen=True, slots=True)
class SegmentEnd:
    """The current speech segment is complete (byte-stream trailer, or end of the uploaded clip)."""


@dataclass(frozen=True, slots=True)
class ClearBuffer:
    """Drop queued speech and return to idle (``lk.clear_buffer``)."""


@dataclass(frozen=True, slots=True)
class Gesture:
    """Play a gesture now (``trigger_dynamics`` RPC, dynamics topic or keyword rule)."""

    action: str


@dataclass(frozen=True, slots=True)
class InputClosed:
    """No more input will come: the agent left, the room closed, or the clip is exhausted.

    ``drain``: play what is queued first (a clip's last words). A room that is gone, or an agent
    that left, has nobody to hear it: the session ends at once and frees its slot."""

    reason: str
    drain: bool = True


InputEvent = SpeechChunk | SegmentEnd | ClearBuffer | Gesture | InputClosed


class SessionInput(Protocol):
    """Where a session's speech and control events come from."""

    async def start(self) -> None: ...

    def events(self) -> AsyncIterator[InputEvent]: ...

    async def aclose(self) -> None: ...


class FrameSink(Protocol):
    """Where a session's frames (video + the audio aligned to each frame) go."""

    @property
    def realtime(self) -> bool:
        """True: frames must be paced at 25 fps (a room). False: as fast as rendered (a file)."""
        ...

    async def start(self) -> None:
        """Open the file or join the room and publish tracks; the first idle frame may follow at once."""
        ...

    async def write(self, frame: AvatarFrame) -> None: ...

    # Optional: ``lead_s`` (float), how far ahead of real time a real-time sink buffers audio (its
    # jitter buffer); the frame pump works up to that far ahead while speech is queued.

    async def aclose(self) -> None:
        """Flush and close; idempotent."""
        ...


@runtime_checkable
class SessionDynamics(Protocol):
    """A running session's dynamics hooks (``farm.dynamics.worker.AttachedSession``).

    The runner hands them to an input that can use them (``DynamicsAwareInput``), so that a room's
    ``trigger_dynamics`` RPC and ``lk.transcription`` keyword rules end in the same debounced path
    as the dynamics topic.
    """

    def rpc(self, payload: str) -> str:
        """The ``trigger_dynamics`` reply; raises a FarmError for a malformed payload."""
        ...

    async def watch(self, reader: Any) -> object:
        """Apply the agent's keyword rules to one ``lk.transcription`` text stream."""
        ...


@runtime_checkable
class DynamicsAwareInput(Protocol):
    def use_dynamics(self, dynamics: SessionDynamics) -> None: ...


@dataclass(frozen=True)
class RenderInfo:
    """What the I/O of a session needs to know of the renderer the runner already opened."""

    frame_size: tuple[int, int]  # (width, height) of every frame the renderer produces
    gestures: tuple[str, ...]  # the gestures ``trigger_dynamics`` may start
    poster: np.ndarray | None = None  # the avatar at rest, shown before the first frame (rooms)


@dataclass(frozen=True)
class SessionIO:
    """What a session reads from and writes to, and where its recording goes (``output``)."""

    input: SessionInput
    sink: FrameSink
    output: str | None = None
