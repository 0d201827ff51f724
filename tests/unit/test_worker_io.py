"""The worker's io_factory: uploaded clips record an MP4; room sessions get a LiveKit room session
(built without connecting; joining happens when the runner starts it)."""

from __future__ import annotations

import uuid

import pytest

from farm.infra.blobs import BlobStore
from farm.kernel.domain import ModelKind, Session
from farm.kernel.settings import Settings
from farm.stream.base import RenderInfo
from farm.stream.mp4 import Mp4Sink
from farm.worker.wiring import WorkerSessionIo

pytestmark = pytest.mark.unit


def test_clips_record_to_mp4_and_rooms_go_to_livekit(settings: Settings) -> None:
    cfg = settings.model_copy(
        update={"livekit_url": "ws://127.0.0.1:7880", "livekit_api_key": "k", "livekit_api_secret": "s" * 32}
    )
    blobs = BlobStore(cfg.blob_dir)
    io_factory = WorkerSessionIo(cfg, blobs)
    render = RenderInfo(frame_size=(96, 96), gestures=("nod",))

    audio_ref = blobs.put(b"x", ".wav")
    clip = Session(id=uuid.uuid4().hex, tenant="t", model=ModelKind.ESSENCE, audio_ref=audio_ref)
    assert isinstance(io_factory(clip, render).sink, Mp4Sink)

    room = Session(
        id=uuid.uuid4().hex,
        tenant="t",
        model=ModelKind.ESSENCE,
        livekit={"room": "r1", "identity": "avatar-1", "agent_identity": "agent-1"},
    )
    io = io_factory(room, render)
    assert io.output == "livekit://r1/avatar-1"
    assert io.sink.realtime
