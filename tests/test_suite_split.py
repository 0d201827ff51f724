"""``make test`` runs the suite in two parts (``PARALLEL_TESTS`` on both cores, ``SERIAL_TESTS`` one at a
time, less the ``SHARED_TESTS`` modules that run in the first part): together they must run every test
module exactly once, or a new folder would silently never run, or a module twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _listed(name: str) -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{name} := (.+)$", makefile, re.MULTILINE)
    assert match, f"Makefile has no {name}"
    return match.group(1).split()


def _modules(paths: list[str], shared: list[str]) -> list[str]:
    """The test modules ``paths`` name: folders (recursively) and files, the make variables expanded."""
    found: list[str] = []
    for path in paths:
        if path == "$(SHARED_TESTS)":
            found.extend(shared)
        elif path == "$(wildcard":
            continue
        elif path == "tests/test_*.py)":  # the second word of $(wildcard tests/test_*.py)
            found.extend(str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob("test_*.py")))
        elif path.endswith(".py"):
            found.append(path)
        else:
            found.extend(str(p.relative_to(ROOT)) for p in sorted((ROOT / path).rglob("test_*.py")))
    return found


def test_the_two_parts_of_make_test_run_every_test_module_exactly_once() -> None:
    shared = _listed("SHARED_TESTS")
    assert all((ROOT / path).is_file() for path in shared), shared
    parallel = _modules(_listed("PARALLEL_TESTS"), shared)
    serial = [m for m in _modules(_listed("SERIAL_TESTS"), shared) if m not in shared]
    every = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py"))
    assert sorted(parallel + serial) == every
    makefile = (ROOT / "Makefile").read_text()
    assert "$(SERIAL_TESTS) $(addprefix --ignore=,$(SHARED_TESTS))" in makefile  # the serial part skips them
