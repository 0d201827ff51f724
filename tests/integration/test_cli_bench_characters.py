"""``farm bench characters`` writes a contact sheet per character and a JSON summary with lip-sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.integration.cli_support import farm_env, run_farm

pytestmark = pytest.mark.integration

CHARACTERS = ("person-full-body", "cat", "cartoon")


def test_the_characters_benchmark_writes_sheets_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "characters"
    result = run_farm("bench", "characters", "--no-sweep", "--out", str(out), env=farm_env(), deadline_s=280)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary["characters"]) == set(CHARACTERS)
    for name in CHARACTERS:
        numbers = summary["characters"][name]
        assert numbers["openness_loudness_corr"] >= 0.6, (name, numbers)
        assert numbers["mouth_pixels_loudness_corr"] >= 0.5, (name, numbers)
        with Image.open(out / numbers["sheet"]) as sheet:
            assert sheet.format == "PNG" and sheet.width > sheet.height > 200
    assert summary["machine"] and summary["date"]
