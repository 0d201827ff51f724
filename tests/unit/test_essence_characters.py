"""Essence for any character: full-body framing, animal mode with given points, and their errors.

Every pack here is built by the real builder and rendered by the real renderer; lip-sync is
measured on the renderer's mouth openness and on the pixels of the mouth region.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data

from farm.bench.characters import CAT_EYES, CAT_MOUTH_BOX, cartoon, full_body_canvas
from farm.infra.espeak import Voice
from farm.kernel.characters import AvatarMode, BuildOptions, Framing
from farm.kernel.errors import MouthTooSmall, PointsOutsideImage, PointsRequired, ValidationError
from farm.render.base import AvatarFrame
from farm.render.essence import EssenceRenderer, LoadedAvatar, build_pack, load_pack
from farm.render.essence.compose import paste_eyes
from farm.render.speech.training.corpus import speak
from farm.render.speech.visemes import TARGET_OPEN

pytestmark = pytest.mark.unit

ANIMAL = AvatarMode.ANIMAL


def _build(
    tmp: pytest.TempPathFactory, name: str, image: np.ndarray, options: BuildOptions, size: int
) -> LoadedAvatar:
    return LoadedAvatar(load_pack(build_pack(image, tmp.mktemp(name) / "pack", size=size, options=options)))


@pytest.fixture(scope="module")
def full_body(tmp_path_factory: pytest.TempPathFactory) -> LoadedAvatar:
    return _build(tmp_path_factory, "full", full_body_canvas(), BuildOptions(framing=Framing.FULL), 384)


@pytest.fixture(scope="module")
def cat(tmp_path_factory: pytest.TempPathFactory) -> LoadedAvatar:
    options = BuildOptions(mode=ANIMAL, framing=Framing.FULL, mouth_box=CAT_MOUTH_BOX, eyes=CAT_EYES)
    return _build(tmp_path_factory, "cat", data.chelsea(), options, 320)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> LoadedAvatar:
    image, mouth, eyes = cartoon()
    options = BuildOptions(mode=ANIMAL, mouth_points=_outline(mouth), eyes=[_centre(e) for e in eyes])
    return _build(tmp_path_factory, "cartoon", image, options, 256)


def _outline(box: list[float]) -> list[list[float]]:
    x0, y0, x1, y1 = box
    return [[x0, (y0 + y1) / 2], [(x0 + x1) / 2, y0], [x1, (y0 + y1) / 2], [(x0 + x1) / 2, y1]]


def _centre(box: list[float]) -> list[float]:
    return [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]


def _speak(avatar: LoadedAvatar) -> tuple[np.ndarray, list[AvatarFrame]]:
    """An espeak-ng sentence through the renderer: (the opening its visemes ask for, frames)."""
    utt = speak("Mama made a lovely apple pie, and we ate it all by the open window.", Voice("en-us"), 0.3)
    renderer = EssenceRenderer(avatar, "s")
    renderer.push_audio(utt.audio, 16_000)
    renderer.flush()
    frames = []
    while renderer.pending_frames():
        frames.append(renderer.next_frame())
    return TARGET_OPEN[utt.targets.argmax(axis=1)], frames


def _pixel_change(avatar: LoadedAvatar, frames: list[AvatarFrame]) -> list[np.ndarray]:
    """Per frame, |rendered - base frame| summed over colour (what the mouth patch changed)."""
    pack = avatar.pack
    length = pack.clip_length("idle")
    return [
        np.abs(f.image.astype(np.float32) - pack.base_frame("idle", f.index % length).astype(np.float32)).sum(
            axis=2
        )
        for f in frames
    ]


def _mouth_width(avatar: LoadedAvatar) -> float:
    points = np.asarray(avatar.pack.manifest["face"]["landmarks"], np.float32)
    return float(np.linalg.norm(points[54] - points[48]))


def assert_lip_sync(avatar: LoadedAvatar) -> None:
    """Openness follows the spoken visemes, the mouth pixels follow them, and the mouth changes most.

    Blinks, glances and speech beats change pixels elsewhere too (a beat nudges the whole head), but
    on open-vowel frames the mouth region changes well over twice as much as the band of face above it.
    """
    asked, frames = _speak(avatar)  # the ground-truth opening of each frame's viseme
    openness = np.array([f.mouth_open for f in frames])
    assert np.corrcoef(openness, asked)[0, 1] >= 0.45  # smoothed by coarticulation
    assert openness.max() >= 0.6 and (openness == 0.0).any()
    changes = _pixel_change(avatar, frames)
    x0, y0, x1, y1 = avatar.pack.manifest["mouth"]["region"]
    in_mouth = np.array([c[y0:y1, x0:x1].mean() for c in changes])
    assert np.corrcoef(in_mouth, asked)[0, 1] >= 0.4
    above = slice(max(0, y0 - (y1 - y0) // 2), y0)
    loud = asked >= 0.6
    ratio = [
        c[y0:y1, x0:x1].mean() / max(c[above, x0:x1].mean(), 0.5)
        for c, on in zip(changes, loud, strict=True)
        if on
    ]
    assert np.median(ratio) > 2.0  # the mouth moves, not the face around it


def _blinked(avatar: LoadedAvatar) -> tuple[np.ndarray, np.ndarray]:
    """An idle base frame as the renderer shows it with open eyes, and with its eyes shut."""
    pack = avatar.pack
    shut_state = next(i for i, s in enumerate(pack.eye_states) if s.blink == 1.0)
    before = pack.base_frame("idle", 10)
    shut = before.copy()
    paste_eyes(shut, pack, avatar.layers, ("idle", 10), shut_state)
    return before.astype(np.float32), shut.astype(np.float32)


# ----------------------------------------------------------------------------- full body


def test_a_full_body_frame_is_kept_whole_at_its_aspect_ratio(full_body: LoadedAvatar) -> None:
    pack = full_body.pack
    assert pack.frame_size == (268, 384)  # 448x640 at 384 on the long side, both sides even
    assert pack.manifest["build"]["framing"] == "full"
    frame = EssenceRenderer(full_body, "s").next_frame()
    assert frame.image.shape == (384, 268, 3)


def test_the_mouth_of_a_small_face_in_a_full_body_frame_follows_speech(full_body: LoadedAvatar) -> None:
    assert _mouth_width(full_body) < 20  # a small face: the whole body is in the frame
    assert_lip_sync(full_body)


def test_blinks_land_on_the_eyes_of_a_full_body_frame(full_body: LoadedAvatar) -> None:
    pack = full_body.pack
    points = np.asarray(pack.manifest["face"]["landmarks"])
    eyes = points[36:48]
    x0, y0 = np.floor(eyes.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(eyes.max(axis=0)).astype(int) + 2
    before, shut = _blinked(full_body)
    at_eyes = np.abs(shut[y0:y1, x0:x1] - before[y0:y1, x0:x1]).mean()
    elsewhere = np.abs(shut[y1 + 10 :, :] - before[y1 + 10 :, :]).mean()
    assert at_eyes > 4.0 * max(elsewhere, 0.5)


def test_a_gesture_moves_the_head_of_a_full_body_frame_and_little_else(full_body: LoadedAvatar) -> None:
    pack = full_body.pack
    mid = pack.clip_length("head_tilt") // 2
    change = np.abs(pack.base_frame("head_tilt", mid).astype(np.float32) - pack.base_frame("idle", 0)).sum(
        axis=2
    )
    x0, y0, x1, y1 = pack.manifest["face"]["box"]
    reach = x1 - x0  # one face width around the face box
    near = change[max(0, y0 - reach) : y1 + reach, max(0, x0 - reach) : x1 + reach].sum()
    assert near / change.sum() >= 0.75
    tilt = next(g for g in pack.manifest["gestures"] if g["name"] == "head_tilt")
    for ax, ay in tilt["mouth_anchor"]:  # lip-sync follows the mouth through the gesture
        assert x0 <= ax <= x1 and y0 <= ay <= y1 + reach


def test_face_framing_crops_around_the_face_at_the_chosen_scale(tmp_path: Path) -> None:
    options = BuildOptions(framing=Framing.FACE, crop_scale=6.0)
    pack = load_pack(build_pack(full_body_canvas(), tmp_path / "p", size=192, options=options))
    x0, _, x1, _ = pack.manifest["face"]["box"]
    assert pack.frame_size == (192, 192)
    assert (x1 - x0) == pytest.approx(192 / 6.0, rel=0.05)
    assert pack.manifest["build"]["crop_scale"] == 6.0


def test_a_face_too_small_for_the_full_frame_is_refused_with_advice(tmp_path: Path) -> None:
    with pytest.raises(MouthTooSmall) as caught:
        build_pack(
            full_body_canvas(scale=0.35, canvas=(900, 1000)),
            tmp_path / "p",
            size=256,
            options=BuildOptions(framing=Framing.FULL),
        )
    assert caught.value.code == "MOUTH_TOO_SMALL"
    assert "framing 'face'" in caught.value.message
    assert not (tmp_path / "p").exists()


# ----------------------------------------------------------------------------- animal mode


def test_a_cat_with_a_given_mouth_moves_its_mouth_with_speech(cat: LoadedAvatar) -> None:
    assert cat.pack.manifest["face"]["detector"] == "user-points"
    assert {s.width for s in cat.pack.shapes} == {0.0}  # openings only, no human lip shapes
    assert_lip_sync(cat)


def test_the_cat_mouth_lands_on_the_given_mouth_box(cat: LoadedAvatar) -> None:
    width, _ = cat.pack.frame_size
    scale = width / 451
    mx0, my0, mx1, my1 = (v * scale for v in CAT_MOUTH_BOX)
    ax, ay = cat.pack.manifest["mouth"]["anchor"]
    assert mx0 <= ax <= mx1 and my0 <= ay <= my1


def test_the_cat_blinks_where_its_eyes_were_given(cat: LoadedAvatar) -> None:
    pack = cat.pack
    scale = pack.frame_size[0] / 451
    x0, y0, x1, y1 = (round(v * scale) for v in CAT_EYES[0])
    before, shut = _blinked(cat)
    assert np.abs(shut[y0:y1, x0:x1] - before[y0:y1, x0:x1]).mean() > 15.0
    assert pack.manifest["eyes"]["blinks"] is True


def test_an_animal_without_eyes_breathes_but_never_blinks(tmp_path: Path) -> None:
    options = BuildOptions(mode=ANIMAL, mouth_box=CAT_MOUTH_BOX)
    pack = load_pack(build_pack(data.chelsea(), tmp_path / "p", size=192, options=options))
    assert pack.manifest["eyes"]["blinks"] is False and len(pack.eye_states) == 1  # "open" only
    frames = [pack.base_frame("idle", i).astype(np.float32) for i in (0, 30)]
    assert np.abs(frames[1] - frames[0]).mean() > 0.3  # idle life: sway and breathing


def test_a_drawn_character_given_points_moves_its_mouth_with_speech(drawn: LoadedAvatar) -> None:
    assert drawn.pack.manifest["build"]["mouth_points"] is not None
    assert_lip_sync(drawn)


def test_gestures_play_on_an_animal(cat: LoadedAvatar) -> None:
    renderer = EssenceRenderer(cat, "s")
    renderer.trigger("head_tilt")
    frames = [renderer.next_frame() for _ in range(cat.pack.clip_length("head_tilt"))]
    assert all(f.gesture == "head_tilt" for f in frames)


# ----------------------------------------------------------------------------- errors


def test_animal_mode_without_a_mouth_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PointsRequired) as caught:
        build_pack(data.chelsea(), tmp_path / "p", options=BuildOptions(mode=ANIMAL))
    assert caught.value.code == "POINTS_REQUIRED" and "mouth_box" in caught.value.message


def test_points_outside_the_image_are_refused(tmp_path: Path) -> None:
    options = BuildOptions(mode=ANIMAL, mouth_box=[236, 266, 286, 320])
    with pytest.raises(PointsOutsideImage) as caught:
        build_pack(data.chelsea(), tmp_path / "p", options=options)
    assert "451x300" in caught.value.message


def test_an_eye_outside_the_image_is_refused() -> None:
    options = BuildOptions(mode=ANIMAL, mouth_box=CAT_MOUTH_BOX, eyes=[[-5, 10]])
    with pytest.raises(PointsOutsideImage):
        options.check_image(451, 300)


def test_two_mouth_corners_are_enough_for_a_closed_mouth() -> None:
    options = BuildOptions(mode=ANIMAL, mouth_points=[[236, 276], [286, 276]])
    assert options.mouth() == (236, 269.75, 286, 282.25)
    options.check_image(451, 300)


def test_a_mouth_box_too_small_to_animate_is_refused() -> None:
    options = BuildOptions(mode=ANIMAL, mouth_box=[100, 100, 105, 102])
    with pytest.raises(MouthTooSmall) as caught:
        options.check_image(451, 300)
    assert caught.value.code == "MOUTH_TOO_SMALL"


@pytest.mark.parametrize(
    "fields",
    [
        {"mouth_box": [10, 10, 40, 30]},  # points belong to animal mode
        {"mode": "animal", "mouth_box": [40, 10, 10, 30]},  # inverted box
        {"mode": "animal", "mouth_box": [10, 10, 40, 30], "mouth_points": [[1, 1], [2, 2]]},
        {"mode": "animal", "mouth_box": [10, 10, 40, 30], "eyes": [[1, 2, 3]]},
    ],
)
def test_inconsistent_options_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BuildOptions.model_validate(fields)
