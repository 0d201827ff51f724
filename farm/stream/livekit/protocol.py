"""Wire details of the remote-avatar protocol that need no LiveKit connection (pure, unit-tested).

* ``stream_format`` reads the string attributes of an ``lk.audio_stream`` header;
* ``PcmDecoder`` turns arbitrary byte chunks into whole interleaved s16le samples;
* ``dynamics_reply`` answers the ``trigger_dynamics`` RPC (bitHuman's documented reply shape).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from farm.dynamics.router import parse_rpc_payload
from farm.kernel.errors import UnknownGesture, ValidationError

SERVICE_NAME = "avatar-farm"
MAX_SAMPLE_RATE_HZ = 192_000
MAX_CHANNELS = 8


@dataclass(frozen=True, slots=True)
class StreamFormat:
    sample_rate: int
    channels: int


def stream_format(attributes: Mapping[str, str] | None) -> StreamFormat:
    """The PCM format an ``lk.audio_stream`` header declares; ValidationError when absent or absurd."""
    attrs = attributes or {}
    try:
        rate = int(attrs["sample_rate"])
        channels = int(attrs["num_channels"])
    except (KeyError, ValueError) as exc:
        raise ValidationError(
            "lk.audio_stream needs integer sample_rate and num_channels attributes"
        ) from exc
    if not (1 <= rate <= MAX_SAMPLE_RATE_HZ and 1 <= channels <= MAX_CHANNELS):
        raise ValidationError("lk.audio_stream format out of range", sample_rate=rate, channels=channels)
    return StreamFormat(rate, channels)


class PcmDecoder:
    """Re-chunk a byte stream of interleaved s16le PCM: chunk boundaries carry no meaning."""

    def __init__(self, channels: int) -> None:
        self._frame_bytes = 2 * channels
        self._carry = b""

    def push(self, data: bytes) -> np.ndarray:
        """Whole samples (all channels) decoded so far, int16 interleaved; the remainder is kept."""
        buf = self._carry + data
        usable = len(buf) - len(buf) % self._frame_bytes
        self._carry = buf[usable:]
        return np.frombuffer(buf[:usable], dtype="<i2").astype(np.int16, copy=False)

    @property
    def leftover_bytes(self) -> int:
        return len(self._carry)


def dynamics_reply(payload: str, trigger: Callable[[str], None]) -> str:
    """Answer ``trigger_dynamics``: ``{"action", "animation_triggered", "service", "status"}``.

    ``trigger`` starts the gesture and raises UnknownGesture for a name the avatar lacks (then
    ``animation_triggered`` is false). A payload that is not a JSON object with a string ``action``
    raises ValidationError, which the RPC layer turns into an RPC error.
    """
    action = parse_rpc_payload(payload)
    try:
        trigger(action)
        triggered = True
    except UnknownGesture:
        triggered = False
    return json.dumps(
        {"action": action, "animation_triggered": triggered, "service": SERVICE_NAME, "status": "success"}
    )
