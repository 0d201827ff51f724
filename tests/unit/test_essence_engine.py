"""EssenceEngine: the process-wide part (prewarm, pack loading, sessions over one shared pack)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm.kernel.errors import PackError
from farm.render.base import AvatarSource, Renderer
from farm.render.essence import EssenceEngine, LoadedAvatar

pytestmark = pytest.mark.unit


def test_prewarm_renders_a_tiny_avatar_and_records_its_time() -> None:
    engine = EssenceEngine()
    engine.prewarm()
    assert engine.name == "essence" and engine.backend == "numpy"
    assert engine.prewarm_s is not None and engine.prewarm_s > 0


def test_sessions_share_one_loaded_pack(essence_pack_dir: Path) -> None:
    engine = EssenceEngine()
    avatar = engine.load_avatar(AvatarSource("agent-1", pack_path=essence_pack_dir))
    assert isinstance(avatar, LoadedAvatar)
    assert engine.avatar_size_mb(avatar) > 1.0
    one, two = engine.open_session(avatar, "a"), engine.open_session(avatar, "b")
    assert isinstance(one, Renderer) and isinstance(two, Renderer)
    one.push_audio(np.full(6_400, 0.2, np.float32), 16_000)
    one.flush()
    assert one.pending_frames() == 10 and two.pending_frames() == 0
    assert one.next_frame().speaking and not two.next_frame().speaking
    one.close()
    one.close()


def test_an_avatar_without_a_pack_is_refused() -> None:
    with pytest.raises(PackError):
        EssenceEngine().load_avatar(AvatarSource("agent-1", image_path=Path("face.png")))


def test_a_pack_is_verified_on_its_first_load_per_process_and_again_when_rebuilt(
    essence_pack_dir: Path, tmp_path: Path
) -> None:
    import shutil

    pack = Path(shutil.copytree(essence_pack_dir, tmp_path / "pack"))
    engine = EssenceEngine()
    source = AvatarSource(key="a", pack_path=pack)
    engine.load_avatar(source)
    member = pack / "frames_idle.npy"
    raw = bytearray(member.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    member.write_bytes(bytes(raw))

    engine.load_avatar(source)  # already verified by this process: mapped, not hashed again
    with pytest.raises(PackError):
        EssenceEngine().load_avatar(source)  # another process verifies on its first load
    manifest = pack / "manifest.json"
    manifest.write_text(manifest.read_text())  # a rebuilt pack has a new manifest
    with pytest.raises(PackError):
        engine.load_avatar(source)
