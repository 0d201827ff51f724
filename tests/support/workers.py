"""Real Celery worker subprocesses for tests: ``launch_worker(settings, queue, log_dir, ...)``.

By default ``tests.support.celery_entry`` (the real worker app with the ToneEngine in place of
models), or ``tasks.celery_entry`` (production, real engines), with FARM_* settings in its
environment; waits until the worker is in the registry. The integration layer's ``start_worker``
fixture and the e2e studio farm both launch workers through it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from farm.infra.redis_conn import connect
from farm.kernel.contracts import WorkerInfo
from farm.kernel.settings import Settings
from farm.sessions.registry import RedisWorkerRegistry
from tests.support.helpers import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_START_DEADLINE_S = 90.0
TEST_ENTRY = "tests.support.celery_entry"  # the real worker app, ToneEngine instead of models
REAL_ENTRY = "tasks.celery_entry"  # the production entrypoint, real engines


def settings_env(settings: Settings) -> dict[str, str]:
    """The FARM_* environment that reproduces ``settings`` in a subprocess."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"FARM_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return env


@dataclass
class WorkerProcess:
    queue: str
    nodename: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    info: WorkerInfo | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker (its threads pool dies with it), as a crashed pod would."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


StartWorker = Callable[..., WorkerProcess]


def launch_worker(
    settings: Settings,
    queue: str,
    log_dir: Path,
    *,
    concurrency: int = 2,
    env: dict[str, str] | None = None,
    wait_state: str | None = "READY",
    entry: str = TEST_ENTRY,
    pool: str = "threads",
) -> WorkerProcess:
    """Start ``celery -A entry worker`` for ``queue``; with ``wait_state``, return once it is registered."""
    nodename = f"{queue}-{uuid.uuid4().hex[:6]}"
    log_path = log_dir / f"{nodename}.log"
    full_env = {**os.environ, **settings_env(settings), **(env or {}), "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable, "-m", "celery", "-A", entry, "worker",
        f"--queues={queue}", f"--pool={pool}", f"--concurrency={concurrency}",
        f"--hostname={nodename}@%h", "--loglevel=INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    worker = WorkerProcess(queue, nodename, proc, log_path, extra=env or {})
    if wait_state is not None:
        assert settings.redis_url
        registry = RedisWorkerRegistry(connect(settings.redis_url))

        def registered() -> WorkerInfo | None:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{worker.log()[-3000:]}")
            for info in registry.list():  # prefork: the entry is the child's, not proc.pid's
                if info.hostname.startswith(f"{nodename}@") and info.state == wait_state:
                    return info
            return None

        try:
            worker.info = wait_until(
                registered, deadline_s=WORKER_START_DEADLINE_S, what=f"{nodename} {wait_state}"
            )
        except BaseException:
            worker.stop()
            raise
    return worker


def stop_workers(workers: list[WorkerProcess]) -> None:
    """SIGTERM all first (warm shutdowns overlap), then wait for each."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.stop()
