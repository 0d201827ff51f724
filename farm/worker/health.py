"""A worker process's health endpoint for Kubernetes probes and the scale-down preStop hook.

A stdlib ``ThreadingHTTPServer`` in a daemon thread (no event loop, no dependency), fed by one
callable the worker runtime provides:

- ``GET /startupz``: 200 once the pool left STARTING (READY or DRAINING), 503 before; ERROR is 500.
  The startup probe's budget covers prewarm (the GPU pool's is minutes).
- ``GET /readyz``: 200 only while READY (a DRAINING or ERROR worker takes no new sessions).
- ``GET /livez``: 500 on ERROR (a failed prewarm no longer holds a GPU forever) or when the runtime's
  progress stamp is older than ``stale_s`` (a wedged event loop / render thread); 200 otherwise.
- ``GET /drainz``: the preStop hook. Calls ``on_drain()`` once (stop consuming, keep live sessions),
  then blocks until ``live_sessions()`` is 0 or ``max_wait_s`` passed, and answers 200 with the
  count left. Kubernetes sends SIGTERM only after preStop returns, so a scaled-down pod finishes its
  live sessions first and the worker's own SIGTERM drain finds nothing to hand back.

- ``GET /metrics``: when given ``metrics`` (e.g. ``worker_metrics.render_latest``), Prometheus text.

The runtime's surface is ``WorkerHealth`` (what the callable returns) and ``HealthServer``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerHealth:
    """One reading of the worker runtime."""

    state: str
    """The ModelPool / worker state: STARTING, READY, DRAINING or ERROR (``contracts.WorkerState``)."""
    progress_at: float
    """``time.monotonic()`` of the runtime's last sign of progress (a heartbeat, a rendered batch)."""
    live_sessions: int = 0
    error: str | None = None


def verdict(health: WorkerHealth, probe: str, *, now: float, stale_s: float) -> tuple[int, str]:
    """HTTP status and reason for ``probe`` (startupz / readyz / livez) given one reading."""
    if health.state == "ERROR":
        return 500, f"worker is ERROR: {health.error or 'unknown error'}"
    if probe == "startupz":
        return (503, "prewarming") if health.state == "STARTING" else (200, health.state)
    if probe == "readyz":
        return (200, "READY") if health.state == "READY" else (503, health.state)
    age = now - health.progress_at
    if health.state != "STARTING" and age > stale_s:
        return 500, f"no runtime progress for {age:.0f}s (bound {stale_s:.0f}s)"
    return 200, health.state


class HealthServer:
    """Serve the probes on ``host:port`` from a daemon thread; ``port=0`` picks a free one (tests)."""

    def __init__(
        self,
        read: Callable[[], WorkerHealth],
        *,
        port: int,
        host: str = "0.0.0.0",
        stale_s: float = 60.0,
        on_drain: Callable[[], None] = lambda: None,
        max_drain_s: float = 3600.0,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self._read = read
        self._metrics = metrics
        self._stale_s = stale_s
        self._on_drain = on_drain
        self._max_drain_s = max_drain_s
        self._poll_s = poll_s
        self._clock = clock
        self._drain_once = threading.Lock()
        self._drained = False
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="farm-health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health endpoint listening", extra={"port": self.port})
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def drain(self) -> int:
        """Start draining once, then wait for live sessions to end (bounded); the count left."""
        with self._drain_once:
            if not self._drained:
                self._drained = True
                self._on_drain()
        deadline = self._clock() + self._max_drain_s
        while True:
            left = self._read().live_sessions
            if left == 0 or self._clock() >= deadline or self._stop.wait(self._poll_s):
                return left

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                probe = self.path.split("?", 1)[0].strip("/")
                if probe == "drainz":
                    left = server.drain()
                    self._reply(200, {"status": "drained" if left == 0 else "timeout", "live_sessions": left})
                    return
                if probe == "metrics" and server._metrics is not None:
                    data = server._metrics()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if probe not in ("startupz", "readyz", "livez"):
                    self._reply(404, {"status": "unknown probe", "probes": "startupz readyz livez drainz"})
                    return
                try:
                    health = server._read()
                except Exception as exc:  # a probe must answer, not hang: report the failure
                    self._reply(500, {"status": f"health read failed: {type(exc).__name__}"})
                    return
                code, reason = verdict(health, probe, now=server._clock(), stale_s=server._stale_s)
                self._reply(
                    code, {"status": reason, "state": health.state, "live_sessions": health.live_sessions}
                )

            def _reply(self, code: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would drown the worker's log

        return Handler
