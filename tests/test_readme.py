"""The README stays true: every setting is in its configuration table, and CI runs its test command."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.kernel.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`FARM_{name.upper()}`" not in readme]
    assert missing == [], f"add these to README.md's configuration table: {missing}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    assert ci.rstrip().splitlines()[-1] == "exec make test"
