"""``farm demo`` from nothing: it starts a farm, builds the sample avatar and writes an MP4."""

from __future__ import annotations

from pathlib import Path

import av
import httpx
import pytest

from tests.integration.api_support import free_port
from tests.integration.cli_support import farm_env, run_farm, spawn_farm, stop_farm
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


def test_the_demo_writes_a_playable_mp4_and_stops_the_farm_it_started(tmp_path: Path) -> None:
    out = tmp_path / "out" / "demo.mp4"
    env = farm_env(
        data_dir=tmp_path / "var", output_dir=tmp_path / "out", api_port=free_port(), flower_port=free_port()
    )
    result = run_farm("demo", "--out", str(out), env=env, deadline_s=280)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Flower" in result.stdout and str(out) in result.stdout
    assert "/studio" in next(line for line in result.stdout.splitlines() if line.startswith("Studio: "))
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert audio.duration is not None and audio.time_base is not None
        speech_s = float(audio.duration * audio.time_base)  # espeak-ng's line or the 3 s synthesised clip
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(frames - speech_s * 25) <= 2  # one frame per 40 ms of speech
    assert not (tmp_path / "var" / "redis" / "url").exists()


def test_the_demo_reuses_a_running_farm_and_starts_only_the_missing_worker(tmp_path: Path) -> None:
    api_port = free_port()
    env = farm_env(
        data_dir=tmp_path / "var", output_dir=tmp_path / "out", api_port=api_port, flower_port=free_port()
    )
    log_path = tmp_path / "up.log"
    farm = spawn_farm("up", "--queues", "essence", "--no-flower", env=env, log_path=log_path)
    try:
        wait_until(lambda: "Ctrl-C stops everything" in log_path.read_text(), deadline_s=90, what="farm up")
        out = tmp_path / "demo.mp4"
        result = run_farm("demo", "--out", str(out), env=env, deadline_s=280)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"using the running farm at http://127.0.0.1:{api_port}" in result.stdout
        assert "starting a worker for queue 'build'" in result.stdout
        assert "starting a worker for queue 'essence'" not in result.stdout
        assert out.is_file()
        assert farm.poll() is None, "the demo must leave the running farm alone"
        assert httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=2).status_code == 200
    finally:
        assert stop_farm(farm, 90) == 0
