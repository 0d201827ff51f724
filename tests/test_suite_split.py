"""``make test`` runs the suite in two parts (``PARALLEL_TESTS`` on both cores, ``SERIAL_TESTS`` one at a
time): together they must name every folder of tests, or a new folder would silently never run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _listed(name: str) -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{name} := (.+)$", makefile, re.MULTILINE)
    assert match, f"Makefile has no {name}"
    return set(match.group(1).split())


def test_the_two_parts_of_make_test_cover_every_test_folder_once() -> None:
    parallel, serial = _listed("PARALLEL_TESTS"), _listed("SERIAL_TESTS")
    folders = {
        f"tests/{d.name}" for d in (ROOT / "tests").iterdir() if d.is_dir() and any(d.glob("test_*.py"))
    }
    assert folders <= parallel | serial
    assert not (parallel & serial)
    assert "$(wildcard tests/test_*.py)" in (ROOT / "Makefile").read_text()  # the top-level modules
