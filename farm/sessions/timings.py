"""What a session's timings record: milestones in ms since its claim, and its pump's figures at the end.

Recorded on the session (``Session.timings_ms``) for the TTFF breakdown (``queue_wait``, ``claim``,
``model_ready``, ``avatar_ready``, ``sink_ready``, ``first_frame``) and what the viewer got (frames,
pictures skipped to keep the voice on time, render estimate, delivered frame rate).
"""

from __future__ import annotations

import time

from farm.stream.pump import PumpStats


class Milestones:
    """Milestones in ms since ``t0`` (``time.perf_counter()`` of the claim)."""

    def __init__(self, t0: float, initial: dict[str, float] | None = None) -> None:
        self._t0 = t0
        self.ms: dict[str, float] = dict(initial or {})

    def mark(self, name: str) -> None:
        self.ms[name] = round((time.perf_counter() - self._t0) * 1000.0, 3)

    def final(self, stats: PumpStats) -> dict[str, float]:
        """Everything, ``total`` marked now, with the pump's figures."""
        self.mark("total")
        return {
            **self.ms,
            "frames": float(stats.frames),
            "late_frames": float(stats.late),
            "skipped_images": float(stats.skipped),
            "resyncs": float(stats.resyncs),
            "starved_frames": float(stats.starved),
            "render_ms": round(stats.render_ms, 3),
            "delivered_fps": round(stats.delivered_fps(), 2),
        }
