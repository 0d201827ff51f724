"""Run ``farm bench NAME ... --smoke`` as a person would (``python -m farm.cli`` in a subprocess,
without any FARM_* variable of the caller) and read the JSON it printed.

``BenchRunner(out_dir)(name, *args)`` runs one with ``--out`` under ``out_dir`` and checks what every
bench promises: exit status 0, its last
stdout line a JSON object, the same object in its ``--out`` file, stamped ``smoke``, machine and
date. It records how long each run took; ``report`` writes those times under the test session's
summary, so the suite's cost of keeping the benches alive stays in view.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import summary

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class BenchRunner:
    out_dir: Path
    smoke: bool = True
    seconds: dict[str, float] = field(default_factory=dict)
    last_out: Path = Path()  # the --out of the latest run

    def __call__(
        self,
        name: str,
        *args: str,
        label: str | None = None,
        written: str | None = None,
        deadline_s: float = 240.0,
    ) -> dict[str, Any]:
        """Run the bench; ``written``: the file its JSON goes to when ``--out`` names a directory."""
        label = label or " ".join((name, *args))
        self.last_out = self.out_dir / f"{len(self.seconds)}-{name}"
        out = self.last_out / written if written else self.last_out
        argv = [sys.executable, "-m", "farm.cli", "bench", name, *args, "--out", str(self.last_out)]
        argv += ["--smoke"] if self.smoke else []
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_") or k == "FARM_NETNS"}
        env["PYTHONUNBUFFERED"] = "1"
        started = time.monotonic()
        done = subprocess.run(
            argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=deadline_s, check=False
        )
        self.seconds[label] = time.monotonic() - started
        assert done.returncode == 0, f"farm bench {label} exited {done.returncode}\n{done.stderr[-4000:]}"
        lines = done.stdout.strip().splitlines()
        assert lines, f"farm bench {label} printed nothing\n{done.stderr[-4000:]}"
        result: dict[str, Any] = json.loads(lines[-1])
        assert json.loads(out.read_text()) == result, "the --out file holds what was printed"
        assert result["smoke"] is self.smoke
        assert {"machine", "date"} <= result.keys()
        return result

    def report(self, title: str) -> None:
        """The time of every run, and their sum, at the end of the terminal output (also under ``-q``
        and from an xdist worker)."""
        if not self.seconds:
            return
        lines = [f"{seconds:7.1f} s  farm bench {label}" for label, seconds in self.seconds.items()]
        summary.add(
            f"{title} (this machine, this run)", [*lines, f"{sum(self.seconds.values()):7.1f} s  in all"]
        )
