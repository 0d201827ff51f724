"""The chaos layer: faults injected into a whole real farm (``farm.bench.chaos``), with the figures
each test measured printed in pytest's terminal summary, so every CI run reports them.

Each test runs ``farm bench chaos <scenario> --smoke``, which starts its own private farm (embedded
Redis on a fixed port, API, build worker, Essence workers: the production entrypoints as
subprocesses), and asserts only on counts (lost, stuck, 500s, frames), never on times; the times are
reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import summary
from tests.support.bench_smoke import BenchRunner

_FIGURES: list[dict[str, Any]] = []
Report = Callable[[dict[str, Any]], None]


@pytest.fixture
def report() -> Report:
    """``report(result)``: keep a scenario's result for the terminal summary."""
    return _FIGURES.append


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchRunner]:
    """``bench("chaos", scenario, ...)``: the scenario in its own private farm, through the CLI."""
    runner = BenchRunner(tmp_path_factory.mktemp("chaos"))
    yield runner
    runner.report("farm bench chaos --smoke")
    if _FIGURES:
        summary.add(
            "chaos figures (farm bench chaos; this machine, this run)",
            [json.dumps(figure, default=str) for figure in _FIGURES],
        )
