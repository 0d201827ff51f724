"""Live blinks, glances and speech beats (farm.render.life) and the eye patches that show them."""

from __future__ import annotations

import numpy as np
import pytest

from farm.bench.common import speech_like
from farm.render.audio import frame_energy
from farm.render.essence import LoadedAvatar
from farm.render.essence.compose import paste_eyes
from farm.render.facerig.rig import FaceRig
from farm.render.life import BEAT_GAP_S, FPS, LifeState

pytestmark = pytest.mark.unit


def _run(state: LifeState, speaking: bool, energies: np.ndarray) -> list:  # type: ignore[type-arg]
    return [state.step(speaking, float(e)) for e in energies]


def _starts(values: list[float]) -> list[int]:
    return [i for i in range(1, len(values)) if values[i] > 0 and values[i - 1] == 0]


def test_a_listening_face_blinks_every_few_seconds() -> None:
    lives = _run(LifeState(1), False, np.zeros(60 * FPS))
    blinks = _starts([life.blink for life in lives])
    assert 8 <= len(blinks) <= 26  # every 2.5-6 s
    assert max(life.blink for life in lives) == 1.0


def test_the_same_seed_replays_the_same_life_and_another_seed_does_not() -> None:
    energy = frame_energy(speech_like(8.0))
    assert _run(LifeState(5), True, energy) == _run(LifeState(5), True, energy)
    assert _run(LifeState(5), True, energy) != _run(LifeState(6), True, energy)


def test_beats_come_only_with_speech_and_never_closer_than_the_gap() -> None:
    energy = frame_energy(speech_like(20.0))
    speaking = _starts([life.beat for life in _run(LifeState(2), True, energy)])
    assert len(speaking) >= 10
    assert min(np.diff(speaking)) >= BEAT_GAP_S * FPS
    assert not _starts([life.beat for life in _run(LifeState(2), False, np.zeros(500))])


def test_a_glance_away_comes_back_to_the_listener() -> None:
    lives = _run(LifeState(3), True, frame_energy(speech_like(30.0)))
    gazes = [life.gaze for life in lives]
    assert any(g != (0.0, 0.0) for g in gazes)
    away = max(len(list(run)) for run in _runs(gazes))
    assert away <= 1.2 * FPS  # no glance lasts longer than ~1 s
    assert gazes.count((0.0, 0.0)) > len(gazes) / 2  # mostly at the camera


def _runs(gazes: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = []
    for g in gazes:
        if g != (0.0, 0.0) and runs and runs[-1][-1] == g:
            runs[-1].append(g)
        elif g != (0.0, 0.0):
            runs.append([g])
    return runs


def _eye_openings(image: np.ndarray) -> float:
    face = FaceRig().find(image)
    assert face is not None
    return float(
        np.linalg.norm(face.points[159, :2] - face.points[145, :2])
        + np.linalg.norm(face.points[386, :2] - face.points[374, :2])
    )


def test_a_blink_closes_the_eyelids_as_the_face_rig_sees_them(essence_avatar: LoadedAvatar) -> None:
    pack = essence_avatar.pack
    shut = next(i for i, s in enumerate(pack.eye_states) if s.blink == 1.0)
    open_frame = pack.base_frame("idle", 0)
    shut_frame = open_frame.copy()
    paste_eyes(shut_frame, pack, essence_avatar.layers, ("idle", 0), shut)
    assert _eye_openings(shut_frame) < 0.4 * _eye_openings(open_frame)


def test_a_glance_moves_the_irises_sideways(essence_avatar: LoadedAvatar) -> None:
    pack = essence_avatar.pack
    right = next(i for i, s in enumerate(pack.eye_states) if s.gaze == (1.0, 0.0))
    frame = pack.base_frame("idle", 0)
    looking = frame.copy()
    paste_eyes(looking, pack, essence_avatar.layers, ("idle", 0), right)
    before, after = FaceRig().find(frame), FaceRig().find(looking)
    assert before is not None and after is not None
    shift = after.points[[468, 473], 0] - before.points[[468, 473], 0]
    assert (shift > 0.5).all()  # both irises moved towards the image's right
