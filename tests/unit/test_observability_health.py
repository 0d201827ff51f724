"""The worker health endpoint over real HTTP: startup/readiness follow the pool, liveness catches ERROR
and a wedged runtime, /drainz (preStop) waits for live sessions before answering."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from farm.worker.health import HealthServer, WorkerHealth, verdict

pytestmark = pytest.mark.unit


class Runtime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.health = WorkerHealth(state="STARTING", progress_at=self.now)
        self.drains = 0
        self.drain_started = threading.Event()

    def clock(self) -> float:
        return self.now

    def on_drain(self) -> None:
        self.drains += 1
        self.drain_started.set()


@pytest.fixture
def runtime() -> Iterator[tuple[Runtime, HealthServer]]:
    rt = Runtime()
    server = HealthServer(
        lambda: rt.health,
        port=0,
        host="127.0.0.1",
        stale_s=30,
        on_drain=rt.on_drain,
        poll_s=0.01,
        clock=rt.clock,
    ).start()
    yield rt, server
    server.close()


def _get(server: HealthServer, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_startup_and_readiness_follow_the_pool(runtime: tuple[Runtime, HealthServer]) -> None:
    rt, server = runtime
    assert _get(server, "/startupz")[0] == 503
    assert _get(server, "/readyz")[0] == 503
    assert _get(server, "/livez")[0] == 200  # prewarm is the startup probe's business
    rt.health = WorkerHealth(state="READY", progress_at=rt.now)
    assert [_get(server, p)[0] for p in ("/startupz", "/readyz", "/livez")] == [200, 200, 200]
    rt.health = WorkerHealth(state="DRAINING", progress_at=rt.now)
    assert (_get(server, "/startupz")[0], _get(server, "/readyz")[0]) == (200, 503)


def test_liveness_fails_on_error_and_on_a_wedged_runtime(runtime: tuple[Runtime, HealthServer]) -> None:
    rt, server = runtime
    rt.health = WorkerHealth(state="ERROR", progress_at=rt.now, error="prewarm timed out")
    code, body = _get(server, "/livez")
    assert code == 500 and "prewarm timed out" in str(body["status"])
    assert _get(server, "/startupz")[0] == 500
    rt.health = WorkerHealth(state="READY", progress_at=rt.now - 31)
    code, body = _get(server, "/livez")
    assert code == 500 and "no runtime progress" in str(body["status"])
    assert _get(server, "/nope")[0] == 404


def test_a_failing_read_answers_500_instead_of_hanging() -> None:
    def broken() -> WorkerHealth:
        raise RuntimeError("boom")

    server = HealthServer(broken, port=0, host="127.0.0.1").start()
    try:
        assert _get(server, "/livez")[0] == 500
    finally:
        server.close()


def test_drainz_stops_intake_once_and_waits_for_live_sessions(runtime: tuple[Runtime, HealthServer]) -> None:
    rt, server = runtime
    rt.health = WorkerHealth(state="READY", progress_at=rt.now, live_sessions=2)
    result: list[tuple[int, dict[str, object]]] = []
    hook = threading.Thread(target=lambda: result.append(_get(server, "/drainz")))
    hook.start()
    assert rt.drain_started.wait(5)
    assert not result  # still waiting: sessions are live
    rt.health = WorkerHealth(state="DRAINING", progress_at=rt.now, live_sessions=0)
    hook.join(5)
    assert result == [(200, {"status": "drained", "live_sessions": 0})]
    assert _get(server, "/drainz")[1]["status"] == "drained" and rt.drains == 1


def test_drain_gives_up_after_its_bound() -> None:
    times = iter([0.0, 10.0, 20.0])
    server = HealthServer(
        lambda: WorkerHealth("DRAINING", 0.0, live_sessions=3),
        port=0,
        host="127.0.0.1",
        max_drain_s=15,
        poll_s=0.001,
        clock=lambda: next(times),
    )
    try:
        assert server.drain() == 3
    finally:
        server.close()


def test_verdict_is_a_pure_function() -> None:
    assert verdict(WorkerHealth("READY", 0.0), "livez", now=10.0, stale_s=60) == (200, "READY")


def test_metrics_are_served_next_to_the_probes() -> None:
    server = HealthServer(
        lambda: WorkerHealth("READY", 0.0), port=0, host="127.0.0.1", metrics=lambda: b"farm_x 1\n"
    ).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as reply:
            assert reply.read() == b"farm_x 1\n"
    finally:
        server.close()
