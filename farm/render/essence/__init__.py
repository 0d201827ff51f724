"""Essence: the farm's CPU avatar model (pre-built packs, audio-driven mouth shapes, gesture clips).

``build_pack`` turns one portrait into a pack, ``load_pack`` opens one read-only, ``EssenceEngine``
is the per-process engine and ``EssenceRenderer`` the per-session renderer. See docs/essence-pack.md.
"""

from __future__ import annotations

from farm.render.essence.builder import build_pack
from farm.render.essence.engine import EssenceEngine
from farm.render.essence.pack import PACK_VERSION, EssencePack, load_pack
from farm.render.essence.renderer import EssenceRenderer, LoadedAvatar
from farm.render.landmarks import sample_portrait

__all__ = [
    "PACK_VERSION",
    "EssenceEngine",
    "EssencePack",
    "EssenceRenderer",
    "LoadedAvatar",
    "build_pack",
    "load_pack",
    "sample_portrait",
]
