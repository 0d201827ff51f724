"""Segment accounting for ``lk.playback_started`` / ``lk.playback_finished`` (pure, no LiveKit import).

The agent counts speech segments, one per ``lk.audio_stream`` byte stream, and expects exactly one
``lk.playback_finished`` per segment: too few and its next turn blocks, too many and speech overlaps
(livekit-agents ``voice/avatar/_datastream_io.py``). Segments are announced by the input side (a stream
header) and played by the output side (frames whose ``segment_id`` the renderer chose), so this
tracker ties the two together:

* a renderer segment id seen for the first time (on a speaking frame) is the oldest announced
  segment that has not started yet (the renderer plays segments in order) → ``Started``;
* the frame with ``segment_end`` finishes it → ``Finished(interrupted=False)``, sent once its audio
  has played out (``deliver``: the sender claims the report then, unless a clear took it);
* ``clear()`` (``lk.clear_buffer``) reports every unreported segment as interrupted, at once, and
  *mutes* output: frames rendered before the runner applied the interrupt still arrive, and their
  renderer ids are retired; ``barrier()`` (the runner has applied the interrupt) ends muting. A
  segment whose last frame was written but whose audio is still queued is unreported too: an agent
  that cuts its speech closes the stream and then sends ``lk.clear_buffer``, and when the stream's
  end arrives first the clear still interrupts what was not heard (before, the normal report went
  out later, for audio the clear had dropped, and the clear got no interrupted report);
* ``close()`` reports whatever is left as interrupted.

Renderer segment ids only grow (``EssenceRenderer`` and the Expression renderer count from 1), so a
retired id never comes back.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from farm.render.base import FPS

FRAME_S = 1.0 / FPS


@dataclass
class Segment:
    """One speech segment of the agent (one byte stream)."""

    key: int  # our own order of arrival
    stream_id: str
    renderer_id: int | None = None
    frames: int = 0  # speaking frames written to the sink
    started: bool = False
    reported: bool = False

    @property
    def written_s(self) -> float:
        return self.frames * FRAME_S


@dataclass(frozen=True, slots=True)
class Started:
    segment: Segment


@dataclass(frozen=True, slots=True)
class Finished:
    """Send ``lk.playback_finished`` with exactly these two keys."""

    segment: Segment
    playback_position: float
    interrupted: bool

    def payload(self) -> dict[str, float | bool]:
        return {"playback_position": round(self.playback_position, 3), "interrupted": self.interrupted}


PlaybackEvent = Started | Finished


@dataclass
class PlaybackTracker:
    """Ties announced segments (input) to rendered frames (output); see the module docstring."""

    _keys: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _waiting: deque[Segment] = field(default_factory=deque)  # announced, no frame played yet
    _playing: dict[int, Segment] = field(default_factory=dict)  # by renderer id
    _retired: set[int] = field(default_factory=set)  # renderer ids whose audio must not play
    _finishing: list[Segment] = field(default_factory=list)  # last frame written, report not yet sent
    muted: bool = False

    def announce(self, stream_id: str) -> Segment:
        """A new byte stream (segment) was accepted from the agent."""
        segment = Segment(next(self._keys), stream_id)
        self._waiting.append(segment)
        return segment

    def finish_empty(self, segment: Segment) -> Finished | None:
        """A stream that carried no audio: the renderer will never play it, so report it now."""
        if segment in self._waiting and not segment.reported:
            self._waiting.remove(segment)
            segment.reported = True
            return Finished(segment, 0.0, interrupted=False)
        return None

    def audible(self, renderer_id: int | None, speaking: bool) -> bool:
        """Whether a frame's audio may play (retired or muted segments play silence)."""
        if not speaking or renderer_id is None:
            return True
        if self.muted:
            self._retired.add(renderer_id)
            return False
        return renderer_id not in self._retired

    def on_frame(self, renderer_id: int | None, speaking: bool, segment_end: bool) -> list[PlaybackEvent]:
        """Account one frame written to the sink (call after ``audible``)."""
        if not speaking or renderer_id is None or renderer_id in self._retired:
            return []
        events: list[PlaybackEvent] = []
        segment = self._playing.get(renderer_id)
        if segment is None:
            if not self._waiting:  # audio we never announced (should not happen): play, never report
                self._retired.add(renderer_id)
                return []
            segment = self._waiting.popleft()
            segment.renderer_id = renderer_id
            segment.started = True
            self._playing[renderer_id] = segment
            events.append(Started(segment))
        segment.frames += 1
        if segment_end:
            del self._playing[renderer_id]
            self._retired.add(renderer_id)
            self._finishing.append(segment)
            events.append(Finished(segment, segment.written_s, interrupted=False))
        return events

    def deliver(self, segment: Segment) -> bool:
        """The audio of a finished segment has played out: True if its normal report is still to be
        sent (the caller sends it now), False if a clear or the close reported it already."""
        if segment.reported:
            return False
        segment.reported = True
        if segment in self._finishing:
            self._finishing.remove(segment)
        return True

    def clear(self, queued_s: float) -> list[Finished]:
        """``lk.clear_buffer``: every unreported segment is interrupted; the last ``queued_s`` of the
        audio written never played (it belongs to the newest segments first). A finishing segment
        none of whose audio is still queued has played out: its own report stays on its way."""
        reports: list[Finished] = []
        unheard = queued_s
        newest_first = sorted([*self._playing.values(), *self._finishing], key=lambda s: s.key, reverse=True)
        for segment in newest_first:
            lost = min(unheard, segment.written_s)
            unheard -= lost
            if segment in self._finishing:
                if lost <= 0.0:
                    continue
                self._finishing.remove(segment)
            segment.reported = True
            reports.append(Finished(segment, segment.written_s - lost, interrupted=True))
        for renderer_id in self._playing:
            self._retired.add(renderer_id)
        for segment in self._waiting:
            segment.reported = True
            reports.append(Finished(segment, 0.0, interrupted=True))
        self._playing.clear()
        self._waiting.clear()
        self.muted = True
        return sorted(reports, key=lambda r: r.segment.key)

    def barrier(self) -> None:
        """The renderer has dropped its queued audio: frames written from now on are post-clear."""
        self.muted = False

    def close(self) -> list[Finished]:
        """The session ends: whatever is unreported was interrupted."""
        reports = self.clear(0.0)
        self.muted = False
        return reports

    @property
    def unreported(self) -> int:
        return len(self._waiting) + len(self._playing) + len(self._finishing)
