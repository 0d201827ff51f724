"""Essence: the farm's CPU avatar model (pre-built packs, audio-driven mouth shapes, gesture clips)."""

from __future__ import annotations

from farm.render.landmarks import sample_portrait

__all__ = ["sample_portrait"]
