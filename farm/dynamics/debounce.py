"""Per-gesture cooldowns and a message-id dedup window, one ``Debouncer`` per live session.

Defaults follow bitHuman's cloud worker (its trigger_dynamics docs): a wave 3 s, a nod 2 s, a
smile 1.5 s, anything else 2 s; a broadcast whose ``message_id`` was already seen in the last 10 s
is a duplicate. A cooldown runs from the last trigger that *played*: a debounced trigger does not
extend it. Agents override cooldowns by gesture name (``DynamicsConfig.cooldowns_s``).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from farm.dynamics.base import Reason

DEFAULT_COOLDOWN_S = 2.0
DEDUP_WINDOW_S = 10.0
DEFAULT_COOLDOWNS_S: Mapping[str, float] = {
    "mini_wave_hello": 3.0,
    "talk_head_nod_subtle": 2.0,
    "smile": 1.5,
}
"""Exact gesture names with a known cooldown."""

_KIND_COOLDOWNS_S: tuple[tuple[str, float], ...] = (("wave", 3.0), ("nod", 2.0), ("smile", 1.5))
"""Cooldown by a word inside the gesture name (``big_wave`` is a wave)."""

_MAX_DEDUP_IDS = 10_000


def cooldown_for(gesture: str, overrides: Mapping[str, float] | None = None) -> float:
    """Seconds between two plays of ``gesture``: agent override, exact default, kind, then 2 s."""
    if overrides and gesture in overrides:
        return float(overrides[gesture])
    if gesture in DEFAULT_COOLDOWNS_S:
        return DEFAULT_COOLDOWNS_S[gesture]
    words = set(re.split(r"[^a-z0-9]+", gesture.lower()))
    for word, seconds in _KIND_COOLDOWNS_S:
        if word in words:
            return seconds
    return DEFAULT_COOLDOWN_S


class Debouncer:
    """Admit or refuse triggers of one session; thread-safe (RPC and topic threads share it)."""

    def __init__(
        self,
        cooldowns_s: Mapping[str, float] | None = None,
        *,
        dedup_window_s: float = DEDUP_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._overrides = dict(cooldowns_s or {})
        self._dedup_window_s = dedup_window_s
        self._clock = clock
        self._last_played: dict[str, float] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()  # message_id → first seen, oldest first
        self._lock = threading.Lock()

    def admit(self, action: str, message_id: str | None = None) -> Reason | None:
        """None when ``action`` may play now (and record it); else why it may not."""
        with self._lock:
            now = self._clock()
            if message_id is not None:
                self._forget_old_ids(now)
                if message_id in self._seen:
                    return "duplicate"
                self._seen[message_id] = now
            last = self._last_played.get(action)
            if last is not None and now - last < cooldown_for(action, self._overrides):
                return "debounced"
            self._last_played[action] = now
            return None

    def _forget_old_ids(self, now: float) -> None:
        while self._seen:
            oldest_id, seen_at = next(iter(self._seen.items()))
            if now - seen_at < self._dedup_window_s and len(self._seen) < _MAX_DEDUP_IDS:
                break
            del self._seen[oldest_id]
