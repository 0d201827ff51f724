"""Worker-side wiring: which avatar a session animates, and its file input and MP4 sink."""

from __future__ import annotations

import uuid

import pytest

from farm.infra.blobs import BlobStore
from farm.kernel.domain import Agent, AgentStatus, ModelKind, Session
from farm.kernel.errors import AgentNotReady, ValidationError
from farm.kernel.settings import Settings
from farm.sessions.agents import MemoryAgentStore, new_agent_id
from farm.stream.file_input import FileInput
from farm.stream.mp4 import Mp4Sink
from farm.worker.wiring import AvatarResolver, FileSessionIo

pytestmark = pytest.mark.unit


def session(**fields: object) -> Session:
    return Session.model_validate({"id": uuid.uuid4().hex, "tenant": "t", "model": "essence", **fields})


def test_an_agent_session_animates_the_agents_pack(settings: Settings) -> None:
    agents, blobs = MemoryAgentStore(), BlobStore(settings.blob_dir)
    image_ref = blobs.put(b"img", ".png")
    ready = AgentStatus.READY
    agent = agents.create(
        Agent(id=new_agent_id(), tenant="t", image_ref=image_ref, status=ready, pack_ref="packs/x")
    )
    source = AvatarResolver(settings, agents, blobs)(session(avatar_id=agent.id))
    assert source.key == agent.id
    assert source.pack_path == settings.data_dir / "packs" / "x"
    assert source.image_path == blobs.path(image_ref)


def test_an_agent_without_a_pack_is_not_ready_for_essence_but_fine_for_expression(settings: Settings) -> None:
    agents, blobs = MemoryAgentStore(), BlobStore(settings.blob_dir)
    agent = agents.create(Agent(id=new_agent_id(), tenant="t", image_ref=blobs.put(b"img", ".png")))
    resolver = AvatarResolver(settings, agents, blobs)
    with pytest.raises(AgentNotReady):
        resolver(session(avatar_id=agent.id))
    source = resolver(session(avatar_id=agent.id, model=ModelKind.EXPRESSION))
    assert source.pack_path is None and source.image_path is not None


def test_a_session_without_agent_or_image_is_refused(settings: Settings) -> None:
    resolver = AvatarResolver(settings, MemoryAgentStore(), BlobStore(settings.blob_dir))
    with pytest.raises(ValidationError):
        resolver(session())


def test_a_file_session_reads_its_clip_and_records_to_the_output_dir(settings: Settings) -> None:
    blobs = BlobStore(settings.blob_dir)
    s = session(audio_ref=blobs.put(b"RIFF", ".wav"))
    io = FileSessionIo(settings, blobs)(s)
    assert isinstance(io.input, FileInput) and isinstance(io.sink, Mp4Sink)
    assert io.output == str(settings.output_dir / f"{s.id}.mp4")
    with pytest.raises(ValidationError):
        FileSessionIo(settings, blobs)(session())
