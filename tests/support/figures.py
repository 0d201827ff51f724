"""Figures a fault-injection test measured (seconds to recover, sessions lost, workers lost), as JSON.

Tests never assert on timings; they record them. ``record`` writes ``<name>.json`` into the test's
temporary directory and, when ``FARM_TEST_FIGURES_DIR`` is set (a run whose numbers go into
BENCHMARKS.md), into that directory too, with the machine and date beside the numbers.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

FIGURES_DIR_ENV = "FARM_TEST_FIGURES_DIR"


def record(name: str, figures: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Write the figures (plus machine and date) and print them; return what was written."""
    document = {
        "name": name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        **figures,
    }
    text = json.dumps(document, indent=2) + "\n"
    (tmp_path / f"{name}.json").write_text(text)
    target = os.environ.get(FIGURES_DIR_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / f"{name}.json").write_text(text)
    print(text)
    return document
