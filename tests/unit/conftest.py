"""Shared unit fixtures: one small Essence pack built once per test session from the sample portrait."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.render.essence import LoadedAvatar, build_pack, load_pack, sample_portrait

ESSENCE_TEST_SIZE = 256  # the engine's behaviour does not depend on size; 256 keeps the build ~1 s


@pytest.fixture(scope="session")
def essence_pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pack built from scikit-image's astronaut (read-only: copy it before corrupting)."""
    return build_pack(sample_portrait(), tmp_path_factory.mktemp("essence") / "pack", size=ESSENCE_TEST_SIZE)


@pytest.fixture(scope="session")
def essence_avatar(essence_pack_dir: Path) -> LoadedAvatar:
    """The session's pack, loaded once and shared like a worker process shares it."""
    return LoadedAvatar(load_pack(essence_pack_dir))
