"""Ingress probe of the LiveKit-protocol model (tests and benches only; off unless asked for).

When a ``LiveKitModel`` is built with ``probe=True`` it records, for every publisher track, what the
relay decodes *as it arrives* (before any re-encode for subscribers): per audio frame its decode
time and RMS level (int16 scale), per video frame its decode time and a small RGB thumbnail, and for
both the arrival time of the frame's first RTP packet (``arrival``: matched through the frame's
pts, which aiortc derives from the RTP timestamp; ``None`` when no packet matched). The two differ
by aiortc's receive jitter buffer, which holds audio until 4 more packets are queued (~80 ms at
20 ms frames) and a video frame until the next frame's first packet (~1 frame interval): that hold
is the model's, not the publisher's. Times
are ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux, so comparable with a bench process on the
same host). Only the last ``seconds`` of each track are kept, and a participant's logs go with it.

The model serves them at ``GET /debug/ingress?room=NAME&since=T`` (404 without the probe) as JSON::

    {"tracks": [{"identity", "sid", "kind": "audio", "t": [...], "arrival": [...], "level": [...]},
                {"identity", "sid", "kind": "video", "t": [...], "arrival": [...], "thumb": N,
                 "frames": "<base64 of uint8 n*N*N*3>"}]}

:func:`decode_thumbs` turns ``frames`` back into an array. Deciding what is "speech" is left to the
caller (``farm bench room`` applies the same onset detection as at its viewer).
"""

from __future__ import annotations

import base64
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from av import AudioFrame, VideoFrame

THUMB = 64  # thumbnail side in pixels, as the room bench's viewer uses


@dataclass
class TrackLog:
    """Arrival times and features of one publisher track at the model."""

    room: str
    identity: str
    sid: str
    kind: str
    times: deque[float]
    arrivals: deque[float | None] = field(default_factory=deque)
    packets: dict[int, float] = field(default_factory=dict)  # RTP timestamp → first packet arrival
    origin: int | None = None  # RTP timestamp that decoded pts count from (aiortc's TimestampMapper)
    levels: deque[float] = field(default_factory=deque)
    thumbs: deque[np.ndarray] = field(default_factory=deque)

    def arrival(self, frame: AudioFrame | VideoFrame) -> float | None:
        """First-packet arrival of a decoded frame: its pts is (RTP timestamp − origin), in the RTP
        clock or, for some decoders, rescaled to ``frame.time_base`` (then matched to ±2 ticks)."""
        if frame.pts is None or self.origin is None:
            return None
        rate = 48_000 if self.kind == "audio" else 90_000  # Opus / video RTP clocks
        ticks = frame.pts if frame.time_base is None else round(frame.pts * frame.time_base * rate)
        for slack in (0, -1, 1, -2, 2):
            found = self.packets.get((self.origin + ticks + slack) & 0xFFFFFFFF)
            if found is not None:
                return found
        return None

    def json(self, since: float) -> dict[str, Any]:
        keep = [i for i, t in enumerate(self.times) if t >= since]
        out: dict[str, Any] = {
            "identity": self.identity,
            "sid": self.sid,
            "kind": self.kind,
            "t": [self.times[i] for i in keep],
            "arrival": [self.arrivals[i] for i in keep],
        }
        if self.kind == "audio":
            out["level"] = [self.levels[i] for i in keep]
        else:
            frames = np.stack([self.thumbs[i] for i in keep]) if keep else np.zeros((0, THUMB, THUMB, 3))
            out["thumb"] = THUMB
            out["frames"] = base64.b64encode(frames.astype(np.uint8).tobytes()).decode("ascii")
        return out


class IngressProbe:
    """Per-track logs of decoded ingress frames, bounded to the last ``seconds``."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self._logs: dict[tuple[str, str], TrackLog] = {}  # (room, track sid)

    def _log(self, room: str, identity: str, sid: str, kind: str) -> TrackLog:
        log = self._logs.get((room, sid))
        if log is None:
            log = self._logs[(room, sid)] = TrackLog(room, identity, sid, kind, deque())
        return log

    def packet(
        self, room: str, identity: str, sid: str, kind: str, *, rtp: int, origin: int | None, at: float
    ) -> None:
        """Note the arrival of an RTP packet of track ``sid`` (before aiortc's jitter buffer), and the
        RTP timestamp its receiver rebases decoded pts on (``None`` before the first decoded frame)."""
        log = self._log(room, identity, sid, kind)
        log.origin = origin
        packets = log.packets
        packets.setdefault(rtp, at)
        while len(packets) > 2000:  # insertion-ordered: drop the oldest timestamps
            del packets[next(iter(packets))]

    def record(self, room: str, identity: str, sid: str, frame: AudioFrame | VideoFrame) -> None:
        """Log one decoded frame of track ``sid`` (called as the relay receives it)."""
        now = time.perf_counter()
        log = self._log(room, identity, sid, "audio" if isinstance(frame, AudioFrame) else "video")
        log.times.append(now)
        log.arrivals.append(log.arrival(frame))
        if isinstance(frame, AudioFrame):
            pcm = frame.to_ndarray().astype(np.float32)
            log.levels.append(float(np.sqrt(np.mean(pcm * pcm))) if pcm.size else 0.0)
        elif isinstance(frame, VideoFrame):
            log.thumbs.append(cv2.resize(frame.to_ndarray(format="rgb24"), (THUMB, THUMB)))
        while log.times and log.times[0] < now - self.seconds:
            log.times.popleft()
            log.arrivals.popleft()
            if log.levels:
                log.levels.popleft()
            if log.thumbs:
                log.thumbs.popleft()

    def forget(self, room: str, identity: str) -> None:
        """Drop the logs of a participant that left."""
        for key in [k for k, v in self._logs.items() if v.room == room and v.identity == identity]:
            del self._logs[key]

    def snapshot(self, room: str, since: float = 0.0) -> dict[str, Any]:
        """The JSON document served at ``/debug/ingress`` for ``room``."""
        return {"tracks": [log.json(since) for log in self._logs.values() if log.room == room]}


def decode_thumbs(track: dict[str, Any]) -> np.ndarray:
    """The ``(n, thumb, thumb, 3)`` uint8 thumbnails of a video track from :meth:`IngressProbe.snapshot`."""
    side = int(track["thumb"])
    raw = np.frombuffer(base64.b64decode(track["frames"]), dtype=np.uint8)
    return raw.reshape(-1, side, side, 3)
