"""The real livekit-agents ``DataStreamAudioOutput`` (the audio tail livekit-plugins-bithuman installs
in cloud mode) talking to the farm's avatar.

livekit-agents 1.8.9 pins ``livekit==1.1.21`` exactly, so it is not in the project's environment
(which runs livekit 1.2.x; the farm also passes the e2e suite on 1.1.21). This module runs where
livekit-agents is importable, e.g. with a side venv put first on PYTHONPATH:

    python -m venv /tmp/lkvenv && /tmp/lkvenv/bin/pip install livekit-agents==1.8.9
    scripts/netns-run env PYTHONPATH=/tmp/lkvenv/lib/python3.11/site-packages:. pytest tests/e2e -m e2e

and is skipped with that reason elsewhere; tests/e2e/test_room_session.py covers the same wire
protocol with a faithful re-implementation on the project's livekit.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from farm.kernel import names
from farm.kernel.settings import Settings
from farm.render.pool import ModelPool
from tests.e2e.actors import tone
from tests.e2e.conftest import LkBackend
from tests.e2e.harness import RoomRun, start_avatar

avatar_io: Any = pytest.importorskip(
    "livekit.agents.voice.avatar",
    reason="livekit-agents is not installed (it pins livekit==1.1.21); see this module's docstring",
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


class AgentSide:
    def __init__(self, room: rtc.Room, output: Any) -> None:
        self.room, self.output = room, output
        self.finished: list[Any] = []
        output.on("playback_finished", self.finished.append)

    async def speak(self, pcm: np.ndarray, rate: int, *, frames: int | None = None) -> None:
        """Capture 20 ms frames like an AgentSession does (faster than real time)."""
        step = rate // 50
        chunks = [pcm[i : i + step] for i in range(0, pcm.shape[0], step)][:frames]
        for chunk in chunks:
            await self.output.capture_frame(rtc.AudioFrame(chunk.tobytes(), rate, 1, chunk.shape[0]))
            await asyncio.sleep(0.01)


@pytest.fixture
async def agent_side(
    lk_backend: LkBackend, warm_pool: ModelPool, essence_pack: Path, settings: Settings
) -> AsyncIterator[tuple[AgentSide, RoomRun]]:
    name = f"agents-{uuid.uuid4().hex[:8]}"
    room = rtc.Room()
    await room.connect(lk_backend.url, lk_backend.token("agent-1", name, kind="agent"))
    output = avatar_io.DataStreamAudioOutput(
        room, destination_identity=names.DEFAULT_AVATAR_IDENTITY, wait_playback_start=False
    )
    run = await start_avatar(lk_backend, warm_pool, essence_pack, settings, name)
    try:
        yield AgentSide(room, output), run
    finally:
        await room.disconnect()
        await asyncio.wait_for(run.task, 20)


async def test_each_flushed_segment_plays_out_exactly_once(
    agent_side: tuple[AgentSide, RoomRun], caplog: pytest.LogCaptureFixture
) -> None:
    agent, _ = agent_side
    caplog.set_level(logging.WARNING)

    for seconds in (0.8, 0.5):
        await agent.speak(tone(seconds, 24_000), 24_000)
        agent.output.flush()
        event = await asyncio.wait_for(agent.output.wait_for_playout(), 20)
        assert event.interrupted is False
        assert event.playback_position == pytest.approx(seconds, abs=0.1)

    await asyncio.sleep(0.5)
    assert len(agent.finished) == 2
    assert "more times than playback segments" not in caplog.text


async def test_clear_buffer_interrupts_within_the_agents_two_second_wait(
    agent_side: tuple[AgentSide, RoomRun], caplog: pytest.LogCaptureFixture
) -> None:
    agent, run = agent_side
    caplog.set_level(logging.WARNING)
    await agent.speak(tone(3.0, 24_000), 24_000, frames=60)  # 1.2 s of a longer utterance
    await asyncio.sleep(0.5)

    agent.output.clear_buffer()
    agent.output.flush()
    event = await asyncio.wait_for(agent.output.wait_for_playout(), 10)

    assert event.interrupted is True
    assert 0.0 < event.playback_position < 3.0
    assert "didn't receive playback finished event" not in caplog.text  # answered, not fabricated
    assert run.room.publisher.playback_reports[-1]["interrupted"] is True

    await agent.speak(tone(0.5, 16_000), 16_000)  # the next turn plays normally
    agent.output.flush()
    after = await asyncio.wait_for(agent.output.wait_for_playout(), 20)
    assert after.interrupted is False
