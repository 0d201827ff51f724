"""Gesture previews: one playable MP4 per gesture clip, scaled down, written atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from farm.dynamics.previews import preview_size, write_gesture_previews

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Clip:
    name: str


@dataclass(frozen=True)
class Pack:
    gestures: tuple[Clip, ...]
    frames: dict[str, np.ndarray]

    def clip_length(self, clip: str) -> int:
        return int(self.frames[clip].shape[0])

    def base_frame(self, clip: str, index: int) -> np.ndarray:
        return self.frames[clip][index]


def moving_square(n: int, size: int = 320) -> np.ndarray:
    frames = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        frames[i, 100:160, 10 + 5 * i : 70 + 5 * i] = (250, 200, 50)
    return frames


def test_each_gesture_clip_becomes_a_small_playable_mp4(tmp_path: Path) -> None:
    pack = Pack(
        (Clip("smile"), Clip("mini_wave_hello")),
        {"smile": moving_square(10), "mini_wave_hello": moving_square(20)},
    )
    written = write_gesture_previews(pack, tmp_path / "previews")
    assert set(written) == {"smile", "mini_wave_hello"}
    with av.open(str(written["mini_wave_hello"])) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
    assert len(decoded) == 20
    assert (decoded[0].width, decoded[0].height) == (256, 256)
    assert not [p for p in (tmp_path / "previews").iterdir() if p.name.startswith(".tmp-")]


def test_a_gesture_name_that_is_not_file_safe_gets_no_preview(tmp_path: Path) -> None:
    pack = Pack((Clip("../evil"),), {"../evil": moving_square(2)})
    assert write_gesture_previews(pack, tmp_path) == {}


def test_preview_sizes_keep_the_aspect_and_stay_even() -> None:
    assert preview_size(1280, 720, 256) == (256, 144)
    assert preview_size(101, 51, 256) == (100, 50)
