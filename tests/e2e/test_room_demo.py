"""``farm demo --room`` from a clean data dir: a real livekit-server, the farm, and a voice agent using
the real plugin that says its lines through the avatar; everything stops afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from farm.infra.procs import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]


def test_the_room_demo_plays_its_lines_through_the_avatar_and_stops_everything(tmp_path: Path) -> None:
    if os.environ.get("FARM_NETNS") != "10.77.0.1":
        pytest.skip("the room demo needs a non-loopback address: run under scripts/netns-run")
    env = {
        **os.environ,
        "FARM_DATA_DIR": str(tmp_path / "var"),
        "FARM_OUTPUT_DIR": str(tmp_path / "out"),
        "FARM_API_PORT": str(free_port()),
        "FARM_ESSENCE_SIZE": "256",
    }
    done = subprocess.run(
        [sys.executable, "-m", "farm.cli", "demo", "--room", "--duration", "15"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )

    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"livekit-server \d+\.\d+\.\d+ \(local, 10\.77\.0\.1\)", out)
    assert re.search(r"watch it in a browser: http://\S+/view/farm-demo-\w+#url=ws://\S+&token=\S+", out)
    played = int(re.search(r"lines played out through the avatar: (\d+)", out).group(1))  # type: ignore[union-attr]
    assert played >= 1
    assert "stopping what the demo started" in out
