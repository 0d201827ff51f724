"""Run the ``farm`` command as a subprocess with a controlled FARM_* environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def farm_env(**farm_vars: object) -> dict[str, str]:
    """The caller's environment without any FARM_* variable, plus ``farm_vars`` (FARM_ prefixed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env.update({f"FARM_{k.upper()}": str(v) for k, v in farm_vars.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_farm(*args: str, env: dict[str, str], deadline_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=deadline_s,
        check=False,
    )


def spawn_farm(*args: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "farm.cli", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop_farm can take all of it down
        )


def stop_farm(farm: subprocess.Popen[bytes], deadline_s: float) -> int:
    """Ctrl-C, as at a terminal, and the exit code. A farm still running ``deadline_s`` later is
    killed with its process group (what it started goes too) and the test fails saying so."""
    farm.send_signal(signal.SIGINT)
    try:
        return farm.wait(deadline_s)
    except subprocess.TimeoutExpired:
        os.killpg(farm.pid, signal.SIGKILL)
        farm.wait()
        raise AssertionError(
            f"farm did not stop within {deadline_s:.0f} s of Ctrl-C (was SIGINT ignored where pytest runs?); "
            "its process group was killed"
        ) from None
