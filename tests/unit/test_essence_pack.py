"""The Essence pack: what the builder writes, and how the loader refuses damaged or foreign packs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from farm.kernel.errors import NoFaceFound, PackError, PackVersionMismatch
from farm.render.essence import PACK_VERSION, LoadedAvatar, build_pack, load_pack

pytestmark = pytest.mark.unit

GESTURES = {"talk_head_nod_subtle", "head_tilt", "smile", "mini_wave_hello"}


def test_the_manifest_describes_a_25_fps_16_khz_avatar(essence_pack_dir: Path) -> None:
    manifest = json.loads((essence_pack_dir / "manifest.json").read_text())
    assert manifest["version"] == PACK_VERSION
    assert manifest["fps"] == 25
    assert manifest["sample_rate_hz"] == 16_000
    assert manifest["samples_per_frame"] == 640
    assert manifest["frame_size"] == [256, 256]
    assert manifest["idle"]["frames"] >= 100  # at least 4 s
    assert len(manifest["idle"]["mouth_anchor"]) == manifest["idle"]["frames"]
    assert {g["name"] for g in manifest["gestures"]} == GESTURES
    for gesture in manifest["gestures"]:
        assert len(gesture["mouth_anchor"]) == gesture["frames"] > 10


def test_the_mouth_bank_has_distinct_shapes_closed_to_wide_and_round(
    essence_avatar: LoadedAvatar,
) -> None:
    pack = essence_avatar.pack
    assert len(pack.shapes) >= 12
    names = {s.name for s in pack.shapes}
    assert {"closed", "half", "open", "full_wide", "mid_round"} <= names
    patches = np.asarray(pack.patches[0], dtype=np.float32)
    closed = patches[[s.name for s in pack.shapes].index("closed")]
    for shape, patch in zip(pack.shapes, patches, strict=True):
        if shape.open >= 0.3:
            assert np.abs(patch - closed).mean() > 2.0, shape.name


def test_the_idle_loop_is_seamless(essence_avatar: LoadedAvatar) -> None:
    pack = essence_avatar.pack
    idle = [pack.base_frame("idle", i).astype(np.float32) for i in range(pack.clip_length("idle"))]
    step = [np.abs(idle[i + 1] - idle[i]).mean() for i in range(20)]
    wrap = np.abs(idle[0] - idle[-1]).mean()
    assert wrap <= 1.5 * max(step)


def test_loaded_arrays_are_read_only_memory_maps(essence_avatar: LoadedAvatar) -> None:
    frames = essence_avatar.pack.frames["idle"]
    assert isinstance(frames, np.memmap)
    with pytest.raises(ValueError):
        frames[0, 0, 0] = 1


@pytest.fixture
def pack_copy(essence_pack_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(essence_pack_dir, tmp_path / "pack"))


def test_a_flipped_byte_in_a_member_is_refused_as_corrupt(pack_copy: Path) -> None:
    member = pack_copy / "frames_idle.npy"
    raw = bytearray(member.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    member.write_bytes(bytes(raw))
    with pytest.raises(PackError) as caught:
        load_pack(pack_copy)
    assert caught.value.code == "PACK_CORRUPT"
    assert "frames_idle" in caught.value.message


def test_a_truncated_member_is_refused_as_corrupt(pack_copy: Path) -> None:
    member = pack_copy / "mouth_patches.npy"
    member.write_bytes(member.read_bytes()[:1000])
    with pytest.raises(PackError) as caught:
        load_pack(pack_copy)
    assert caught.value.code == "PACK_CORRUPT"


def test_a_missing_manifest_is_refused_as_corrupt(pack_copy: Path) -> None:
    (pack_copy / "manifest.json").unlink()
    with pytest.raises(PackError) as caught:
        load_pack(pack_copy)
    assert caught.value.code == "PACK_CORRUPT"


def test_another_format_version_is_refused_with_its_own_code(pack_copy: Path) -> None:
    manifest = json.loads((pack_copy / "manifest.json").read_text())
    manifest["version"] = PACK_VERSION + 1
    (pack_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackVersionMismatch) as caught:
        load_pack(pack_copy)
    assert caught.value.code == "PACK_VERSION_MISMATCH"


def test_an_image_without_a_face_builds_nothing(tmp_path: Path) -> None:
    with pytest.raises(NoFaceFound) as caught:
        build_pack(data.coffee(), tmp_path / "pack", size=128)
    assert caught.value.code == "NO_FACE_FOUND"
    assert not (tmp_path / "pack" / "manifest.json").exists()


def test_the_builder_reports_progress_up_to_done(tmp_path: Path) -> None:
    from farm.render.essence import sample_portrait

    seen: list[tuple[str, float]] = []
    build_pack(sample_portrait(), tmp_path / "pack", size=128, progress=lambda s, f: seen.append((s, f)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions)
    assert seen[-1] == ("done", 1.0)
    assert load_pack(tmp_path / "pack").frame_size == (128, 128)


def test_a_grey_landscape_photo_is_framed_into_a_square_pack(tmp_path: Path) -> None:
    from skimage.color import rgb2gray

    from farm.kernel.errors import InvalidImage
    from farm.render.essence import sample_portrait

    grey = (rgb2gray(sample_portrait())[40:340, 60:460] * 255).astype(np.uint8)  # 300x400, face off-centre
    pack = load_pack(build_pack(grey, tmp_path / "pack", size=127))
    assert pack.frame_size == (128, 128)
    frame = pack.base_frame("idle", 0)
    assert frame.shape == (128, 128, 3)
    with pytest.raises(InvalidImage):
        build_pack(np.zeros((32, 32, 3), np.uint8), tmp_path / "tiny")


def test_a_version_1_pack_is_refused_with_a_hint_to_rebuild_it(pack_copy: Path) -> None:
    manifest = json.loads((pack_copy / "manifest.json").read_text())
    manifest["version"] = 1
    (pack_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackVersionMismatch) as caught:
        load_pack(pack_copy)
    assert "rebuild" in caught.value.message
