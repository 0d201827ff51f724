"""One capped exponential backoff for the whole farm (retries, resubscribes, restarts, heartbeats).

``capped_delay_s(n)`` is the delay before retry ``n`` (0-based): ``first_s * factor**n``, at most
``max_s``. ``Backoff`` keeps the count of consecutive failures for loops that retry until they
succeed and then start over.
"""

from __future__ import annotations

from dataclasses import dataclass


def capped_delay_s(attempt: int, *, first_s: float, max_s: float, factor: float = 2.0) -> float:
    """Delay before retry ``attempt`` (0 for the first retry): ``first_s · factor^attempt`` ≤ ``max_s``."""
    if attempt < 0:
        raise ValueError("attempt counts from 0")
    return min(max_s, first_s * factor ** min(attempt, 64))


@dataclass
class Backoff:
    """Consecutive-failure counter with capped exponential delays."""

    first_s: float
    max_s: float
    factor: float = 2.0
    failures: int = 0

    def next_s(self) -> float:
        """Count one more failure; the delay to wait before trying again."""
        delay = capped_delay_s(self.failures, first_s=self.first_s, max_s=self.max_s, factor=self.factor)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

    def after(self, ok: bool, *, floor_s: float) -> float:
        """The pause before the next periodic call: ``floor_s`` after a success, a growing delay (never
        below ``floor_s``) after each consecutive failure."""
        if ok:
            self.reset()
            return floor_s
        self.failures += 1
        return max(
            floor_s, capped_delay_s(self.failures, first_s=self.first_s, max_s=self.max_s, factor=self.factor)
        )
