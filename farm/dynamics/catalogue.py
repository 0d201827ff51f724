"""The gesture catalogue of an agent in bitHuman's shape, and where gesture previews live.

Light on purpose (no render imports): the API serves the catalogue and the preview files, the build
task writes the previews (``farm.dynamics.previews.write_gesture_previews``) into ``previews_dir``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from farm.kernel.domain import Agent, AgentStatus

EXPRESSION_GESTURES: tuple[str, ...] = ("talk_head_nod_subtle", "head_tilt", "smile")
"""The motion-program gestures every Expression session plays (no build step, no clips; face and
shoulders only, so no wave). Kept equal to ``farm.render.expression.motion.GESTURES`` by a unit test:
the API may not import the render package."""

GESTURE_NAME_RE = re.compile(r"^[a-z0-9_]{1,64}$")
"""Gesture names are file-name safe: they name preview files."""


def previews_dir(data_dir: Path, agent_id: str) -> Path:
    """Directory of an agent's gesture previews: ``<data_dir>/previews/<agent_id>/``."""
    return Path(data_dir) / "previews" / agent_id


def preview_path(data_dir: Path, agent_id: str, gesture: str) -> Path:
    """``<gesture>.mp4`` in the agent's preview directory; refuses names that are not gesture names."""
    if not GESTURE_NAME_RE.fullmatch(gesture):
        raise ValueError("not a gesture name")
    return previews_dir(data_dir, agent_id) / f"{gesture}.mp4"


def preview_url(base_url: str, agent_id: str, gesture: str) -> str:
    return f"{base_url.rstrip('/')}/v1/dynamics/{agent_id}/previews/{gesture}.mp4"


def catalogue_data(agent: Agent, base_url: str, gestures: Iterable[str] | None = None) -> dict[str, object]:
    """The ``data`` of ``GET /v1/dynamics/{agent_id}``.

    ``url`` (the agent's model with its gesture clips) is null when the agent has no gestures, which
    is how bitHuman clients tell "no dynamics"; ``status`` is ``generating`` while the pack builds.
    """
    names = sorted(set(agent.gestures if gestures is None else gestures))
    base = base_url.rstrip("/")
    return {
        "url": f"{base}/v1/agents/{agent.id}" if names else None,
        "status": "generating" if agent.status == AgentStatus.PROCESSING else "ready",
        "agent_id": agent.id,
        "gestures": {name: preview_url(base, agent.id, name) for name in names},
    }
