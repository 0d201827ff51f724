"""Worker metrics: the runtime's calls land in Prometheus text, and multi-process mode aggregates
samples written by separate OS processes (a forking pool)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from farm.worker.metrics import WorkerMetrics, render_latest

pytestmark = pytest.mark.unit


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_the_runtime_calls_become_samples() -> None:
    m = WorkerMetrics()
    m.set_ready("essence", True)
    m.set_capacity("essence", 3)
    m.session_started("essence", queue_wait_s=0.4)
    m.ttff("essence", 0.3, {"claim": 0.01, "avatar": 0.2})
    m.frames("essence", rendered=25, late=2, starved=3)
    m.av_offset("essence", 0.01)
    m.batch("essence", 8)
    m.lease_lost("essence")
    m.handed_back("essence")
    m.failed("essence", "RENDER_FAILED")
    s = _samples(render_latest(m))
    pool = (("pool", "essence"),)
    assert s[("farm_worker_live_sessions", pool)] == 1
    assert s[("farm_worker_free_slots", pool)] == 3
    assert s[("farm_worker_ready", pool)] == 1
    assert s[("farm_frames_rendered_total", pool)] == 25 and s[("farm_frames_late_total", pool)] == 2
    assert s[("farm_speech_starved_frames_total", pool)] == 3  # the agent's speech came late
    assert s[("farm_session_ttff_stage_seconds_count", (("pool", "essence"), ("stage", "avatar")))] == 1
    assert s[("farm_session_failures_total", (("code", "RENDER_FAILED"), ("pool", "essence")))] == 1
    assert s[("farm_session_queue_wait_seconds_count", pool)] == 1
    m.session_ended("essence")
    assert _samples(render_latest(m))[("farm_worker_live_sessions", pool)] == 0


def test_render_without_metrics_or_multiproc_dir_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR"):
        render_latest()


def test_multiprocess_mode_sums_live_sessions_of_separate_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    child = (
        "from farm.worker.metrics import WorkerMetrics\n"
        "m = WorkerMetrics(); m.session_started('essence', 1.0); m.frames('essence', 10)\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", child], check=True, env={**__import__("os").environ})
    s = _samples(render_latest())
    assert s[("farm_frames_rendered_total", (("pool", "essence"),))] == 20
    assert s[("farm_session_queue_wait_seconds_count", (("pool", "essence"),))] == 2
