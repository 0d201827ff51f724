"""``farm demo`` from nothing: it starts a farm, builds the sample avatar and writes an MP4."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.integration.api_support import free_port
from tests.integration.cli_support import farm_env, run_farm

pytestmark = pytest.mark.integration


def test_the_demo_writes_a_playable_mp4_and_stops_the_farm_it_started(tmp_path: Path) -> None:
    out = tmp_path / "out" / "demo.mp4"
    env = farm_env(
        data_dir=tmp_path / "var", output_dir=tmp_path / "out", api_port=free_port(), flower_port=free_port()
    )
    result = run_farm("demo", "--out", str(out), env=env, deadline_s=280)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Flower" in result.stdout and str(out) in result.stdout
    with av.open(str(out)) as container:
        assert container.streams.audio
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(frames - 75) <= 1  # the 3 s synthesised clip at 25 fps
    assert not (tmp_path / "var" / "redis" / "url").exists()
