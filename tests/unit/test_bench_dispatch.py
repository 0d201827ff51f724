"""The dispatch benchmark's statistics (the timing itself is never asserted)."""

from __future__ import annotations

import pytest

from farm.bench.dispatch import percentile, summarize

pytestmark = pytest.mark.unit


def test_percentiles_use_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50.0, 90.0, 99.0)
    assert percentile([3.0], 99) == 3.0
    assert percentile([5.0, 1.0], 100) == 5.0


def test_a_summary_has_median_p90_p99_and_max() -> None:
    expected = {"median_ms": 2.5, "p90_ms": 10.0, "p99_ms": 10.0, "max_ms": 10.0}
    assert summarize([1.0, 2.0, 3.0, 10.0]) == expected
