"""`farm sheet`: a contact sheet of an avatar, so reviewers look at it rather than read about it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from farm.cli import main
from farm.render.essence import LoadedAvatar
from farm.render.essence.sheet import WIDTH, contact_sheet

pytestmark = pytest.mark.unit


def test_the_sheet_shows_idle_visemes_eyes_and_gestures(essence_avatar: LoadedAvatar) -> None:
    sheet = contact_sheet(essence_avatar, "astronaut")
    assert sheet.shape[1] == WIDTH and sheet.dtype == np.uint8
    assert 700 < sheet.shape[0] < 1400  # title and five rows of pictures
    assert sheet.std() > 30  # pictures, not an empty canvas


def test_farm_sheet_writes_the_png_of_a_pack(essence_pack_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sheets" / "astronaut.png"
    assert main(["sheet", "--pack", str(essence_pack_dir), "--out", str(out)]) == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] == WIDTH


def test_farm_sheet_without_an_avatar_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sheet"]) == 1
    err = capsys.readouterr().err
    assert "VALIDATION_ERROR" in err and "--pack" in err and "--image" in err
