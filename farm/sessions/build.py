"""Build the Essence pack of an agent: the core of the ``farm.agent.build`` task.

The agent ends READY (with ``pack_ref`` and its gestures) or FAILED (with a message a person can act
on); gesture preview MP4s for the dynamics catalogue are written best-effort.
"""

from __future__ import annotations

import logging
from pathlib import Path

from farm.infra.blobs import BlobStore
from farm.infra.media import load_image_rgb
from farm.kernel.contracts import BuildTaskResult
from farm.kernel.domain import AgentStatus
from farm.kernel.errors import FarmError
from farm.kernel.settings import Settings
from farm.sessions.base import AgentStore

log = logging.getLogger(__name__)


def build_agent(settings: Settings, agents: AgentStore, blobs: BlobStore, agent_id: str) -> BuildTaskResult:
    """Build the pack of ``agent_id`` under ``settings.pack_dir`` and record the outcome on the agent."""
    from farm.render.essence import motion
    from farm.render.essence.builder import build_pack

    agent = agents.get(agent_id)
    out_dir = settings.pack_dir / agent.id

    def progress(stage: str, fraction: float) -> None:  # the studio shows it live (GET /v1/agents/{id})
        if fraction < 1.0:
            agents.update(
                agent.id, AgentStatus.PROCESSING, build_stage=stage, build_progress=round(fraction, 3)
            )

    try:
        image = load_image_rgb(blobs.path(agent.image_ref), settings.max_image_pixels)
        build_pack(image, out_dir, size=settings.essence_size, options=agent.build, progress=progress)
    except FarmError as exc:
        agents.update(agent.id, AgentStatus.FAILED, error_message=exc.message)
        return BuildTaskResult(agent_id=agent.id, status="failed", code=exc.code)
    except Exception:
        log.exception("pack build failed", extra={"agent_id": agent.id})
        agents.update(agent.id, AgentStatus.FAILED, error_message="the pack build failed")
        return BuildTaskResult(agent_id=agent.id, status="failed", code="INTERNAL_ERROR")
    _write_previews(settings, agent.id, out_dir)
    pack_ref = str(out_dir.relative_to(settings.data_dir))
    agents.update(
        agent.id,
        AgentStatus.READY,
        pack_ref=pack_ref,
        gestures=list(motion.GESTURES),
        build_stage=None,
        build_progress=1.0,
    )
    return BuildTaskResult(agent_id=agent.id, status="ready", pack_ref=pack_ref)


def _write_previews(settings: Settings, agent_id: str, pack_dir: Path) -> None:
    """Gesture preview MP4s for the dynamics catalogue; a failure leaves the agent usable."""
    from farm.dynamics.catalogue import previews_dir
    from farm.dynamics.previews import write_gesture_previews
    from farm.render.essence import load_pack

    try:
        write_gesture_previews(load_pack(pack_dir), previews_dir(settings.data_dir, agent_id))
    except Exception:
        log.exception("gesture previews not written", extra={"agent_id": agent_id})
