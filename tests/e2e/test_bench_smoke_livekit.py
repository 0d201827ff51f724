"""The benches that need a real livekit-server run here at test size (``--smoke``) through the real
CLI, against the test run's server (``lk_backend``), so neither can rot: each exits 0 and prints its
JSON with the keys a real run prints. Numbers are never judged; each run's time is printed at the
end of the module. (The chaos room-kill scenario runs in tests/chaos.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import LkBackend
from tests.support.bench_smoke import BenchRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchRunner]:
    runner = BenchRunner(tmp_path_factory.mktemp("bench-smoke"))
    yield runner
    runner.report("farm bench --smoke, e2e")


def _server(lk: LkBackend) -> tuple[str, ...]:
    return ("--livekit-url", lk.url, "--api-key", lk.api_key, "--api-secret", lk.api_secret)


def test_room_measures_the_first_frame_at_a_viewer_and_the_av_offset(
    bench: BenchRunner, lk_backend: LkBackend
) -> None:
    summary = bench("room", *_server(lk_backend), label="room (the test run's livekit-server)")

    assert summary["sessions"] == 1 and summary["against"] == f"LiveKit server at {lk_backend.url}"
    assert summary["first_frame_ms"]["n"] == 1
    assert {"model_ready", "room_connect", "first_frame"} <= summary["worker_ms"].keys()
    assert "av_offset_ms" in summary and summary["browser"] is None  # the smoke leaves Chromium out


def test_density_runs_a_step_of_room_sessions_on_a_pinned_worker(
    bench: BenchRunner, lk_backend: LkBackend
) -> None:
    summary = bench("density", *_server(lk_backend), label="density (the test run's livekit-server)")

    (step,) = summary["steps"]
    assert step["sessions"] == 1 and step["failed"] == 0 and step["stranded"] == 0
    assert step["window_frames"] > 0 and step["ttff_ms"]["n"] == 1
    # what tells the load generator's lateness from the worker's
    assert {"starved_frames", "agent_behind_ms", "bench_cores_busy", "video_viewers"} <= step.keys()
    assert {"sessions_per_core_25fps", "idle_worker_rss_mb", "worker_cores"} <= summary.keys()
