"""A local, real ``livekit-server``: find or build the binary, run it, wait until it serves.

Used by ``farm demo --room``, ``farm bench room|density`` and the e2e tests (``make test`` runs
``farm livekit-server`` first so the suite never builds inside a test). The binary is, in order:

1. ``explicit`` (the ``LIVEKIT_SERVER_BIN`` environment variable, read by the entrypoints);
2. ``livekit-server`` on ``PATH``;
3. the build cache ``$XDG_CACHE_HOME/avatar-farm/livekit-server-<version>/livekit-server``
   (``~/.cache`` by default), built there with the Go toolchain from the module proxy when missing
   (``go install github.com/livekit/livekit-server/cmd/server@<version>``; ~2 min on 2 cores the
   first time, seconds once GOMODCACHE/GOCACHE are warm).

libwebrtc ignores loopback, so the server and every WebRTC client must share a non-loopback
address: the private network namespace of ``scripts/netns-run`` (10.77.0.1) in tests, the machine's
own address elsewhere (``default_node_ip``).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from farm.kernel.errors import FarmError

log = logging.getLogger(__name__)

LIVEKIT_SERVER_VERSION = "v1.13.5"
LIVEKIT_SERVER_MODULE = "github.com/livekit/livekit-server/cmd/server"
BINARY_NAME = "livekit-server"
DEV_API_KEY = "devkey"
# livekit-server refuses API secrets shorter than 32 characters outside --dev.
DEV_API_SECRET = "farm-local-dev-secret-0123456789abcdef"


class LiveKitServerUnavailable(FarmError):
    """No livekit-server binary could be found or built here."""

    status = 503
    code = "LIVEKIT_SERVER_UNAVAILABLE"
    retryable = False


def cache_dir(version: str = LIVEKIT_SERVER_VERSION, *, home: Path | None = None) -> Path:
    """Where a built binary of ``version`` lives (never inside the repository)."""
    base = os.environ.get("XDG_CACHE_HOME") if home is None else None
    root = Path(base) if base else (home or Path.home()) / ".cache"
    return root / "avatar-farm" / f"livekit-server-{version}"


def find_binary(explicit: str | None = None, version: str = LIVEKIT_SERVER_VERSION) -> Path | None:
    """The binary to run, without building: explicit path, then PATH, then the build cache."""
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LiveKitServerUnavailable(f"LIVEKIT_SERVER_BIN={explicit} is not an executable file")
        return path
    on_path = shutil.which(BINARY_NAME)
    if on_path:
        return Path(on_path)
    cached = cache_dir(version) / BINARY_NAME
    return cached if cached.is_file() else None


def build_binary(version: str = LIVEKIT_SERVER_VERSION, *, say: Callable[[str], None] = print) -> Path:
    """``go install`` livekit-server ``version`` into the cache folder; returns the binary."""
    go = shutil.which("go")
    if go is None:
        raise LiveKitServerUnavailable(
            "livekit-server is not on PATH and Go is not installed to build it: install Go >= 1.26, "
            "or set LIVEKIT_SERVER_BIN, or point the farm at a server with LIVEKIT_URL"
        )
    target = cache_dir(version)
    target.mkdir(parents=True, exist_ok=True)
    say(f"building livekit-server {version} with {go} into {target} (first time: minutes) ...")
    env = {**os.environ, "GOBIN": str(target)}
    started = time.monotonic()
    proc = subprocess.run(
        [go, "install", f"{LIVEKIT_SERVER_MODULE}@{version}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise LiveKitServerUnavailable(f"go install of livekit-server {version} failed:\n{tail}")
    (target / "server").replace(target / BINARY_NAME)
    say(f"built livekit-server {version} in {time.monotonic() - started:.0f} s")
    return target / BINARY_NAME


def ensure_binary(explicit: str | None = None, *, say: Callable[[str], None] = print) -> Path:
    """Find the binary, building it into the cache when there is none."""
    return find_binary(explicit) or build_binary(say=say)


def binary_version(binary: Path) -> str:
    """``livekit-server 1.13.5`` (what ``--version`` prints, without the word "version")."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    words = out.stdout.split()
    return f"livekit-server {words[-1]}" if words else "livekit-server (unknown version)"


def default_node_ip() -> str:
    """A non-loopback IPv4 address of this machine (libwebrtc ignores loopback).

    Inside ``scripts/netns-run`` that is the namespace's veth address; elsewhere the address of the
    interface that holds the default route (no packet is sent: a UDP connect only picks a route).
    """
    netns = os.environ.get("FARM_NETNS", "")
    if netns.count(".") == 3:
        return netns
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.255", 9))  # TEST-NET-1: route lookup only, nothing is sent
            address = str(sock.getsockname()[0])
        except OSError:
            address = "127.0.0.1"
    return address


def _free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalLiveKitServer:
    """One livekit-server process on ``host`` with its own signalling, TCP and UDP ports."""

    binary: Path
    host: str
    api_key: str = DEV_API_KEY
    api_secret: str = DEV_API_SECRET
    port: int = 0
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    version: str = ""

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def label(self) -> str:
        """What a measurement was taken against, e.g. ``livekit-server 1.13.5 (local, 10.77.0.1)``."""
        return f"{self.version} (local, {self.host})"

    def config_yaml(self, tcp_port: int, udp_port: int) -> str:
        return "\n".join(
            [
                f"port: {self.port}",
                "bind_addresses:",
                f"  - {self.host}",
                "rtc:",
                f"  tcp_port: {tcp_port}",
                f"  udp_port: {udp_port}",
                "  use_external_ip: false",
                f"  node_ip: {self.host}",
                "keys:",
                f"  {self.api_key}: {self.api_secret}",
                "logging:",
                "  level: info",
                "room:",
                "  empty_timeout: 60",
                "  departure_timeout: 5",
                "",
            ]
        )

    def start(self, ready_timeout_s: float = 30.0) -> LocalLiveKitServer:
        """Start the process and return once its HTTP endpoint answers."""
        self.version = self.version or binary_version(self.binary)
        self.port = self.port or _free_port(self.host)
        config = self.config_yaml(_free_port(self.host), _free_port(self.host, socket.SOCK_DGRAM))
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [str(self.binary), "--config-body", config], stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise LiveKitServerUnavailable(
                    f"livekit-server exited with {self._proc.returncode} at start (log: {self.log_path})"
                )
            try:
                if httpx.get(f"http://{self.host}:{self.port}/", timeout=1.0).status_code == 200:
                    log.info("livekit-server ready", extra={"url": self.url, "version": self.version})
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise LiveKitServerUnavailable(f"livekit-server did not answer on {self.url} in {ready_timeout_s} s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> LocalLiveKitServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
