"""The chaos layer: faults injected into a whole real farm (``farm.bench.chaos``), with the figures
each test measured printed in pytest's terminal summary, so every CI run reports them.

Each test starts its own private farm (embedded Redis on a fixed port, API, build worker, Essence
workers: the production entrypoints as subprocesses) and asserts only on counts (lost, stuck, 500s,
frames), never on times; the times are reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from farm.bench.chaos import ChaosFarm, chaos_farm

_FIGURES: list[dict[str, Any]] = []
Report = Callable[[dict[str, Any]], None]


@pytest.fixture
def report() -> Report:
    """``report(result)``: keep a scenario's result for the terminal summary."""
    return _FIGURES.append


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[ChaosFarm]:
    with chaos_farm(workers=2, concurrency=2, root=tmp_path) as running:
        yield running


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("chaos figures (farm bench chaos; this machine, this run)")
    for figure in _FIGURES:
        terminalreporter.write_line(json.dumps(figure, default=str))
