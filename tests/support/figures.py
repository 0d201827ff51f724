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
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from farm.kernel import names

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


class StatusPoller:
    """``GET`` one API path with an api-secret, counting the answers by status (or transport error)."""

    def __init__(self, base_url: str, secret: str, path: str) -> None:
        self._http = httpx.Client(base_url=base_url, headers={names.HEADER_API_SECRET: secret}, timeout=10.0)
        self._path = path
        self.statuses: Counter[str] = Counter()

    def ok(self) -> bool:
        """One request; True when it answered 200."""
        try:
            status = self._http.get(self._path).status_code
        except httpx.HTTPError as exc:
            self.statuses[type(exc).__name__] += 1
            return False
        self.statuses[str(status)] += 1
        return status == 200

    def poll_for(self, seconds: float, interval_s: float = 0.05) -> None:
        """Keep asking for ``seconds`` (the length of an outage the test imposes)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ok()
            time.sleep(interval_s)

    def close(self) -> None:
        self._http.close()
