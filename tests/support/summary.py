"""Sections for the end of pytest's terminal output, also from pytest-xdist workers.

A worker's own terminal output never reaches the run's (``make test`` runs most of the suite with
``-n 2``), so figures a test wants every CI log to show are kept here with ``add``; each worker hands
its sections to the controller when it finishes (``workeroutput``), and the controller prints them
all in its terminal summary (tests/conftest.py wires the hooks)."""

from __future__ import annotations

import json
from typing import Any

SECTIONS: list[tuple[str, list[str]]] = []
_KEY = "summary_sections"


def add(title: str, lines: list[str]) -> None:
    """Print ``lines`` under ``title`` at the end of the run."""
    SECTIONS.append((title, list(lines)))


def hand_over(workeroutput: dict[str, Any]) -> None:
    """In a worker: give the controller this worker's sections."""
    workeroutput[_KEY] = json.dumps(SECTIONS)


def take_over(workeroutput: dict[str, Any]) -> None:
    """In the controller: keep a finished worker's sections."""
    SECTIONS.extend((title, lines) for title, lines in json.loads(workeroutput.get(_KEY, "[]")))


def write(terminalreporter: Any) -> None:
    for title, lines in SECTIONS:
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
