"""The scripted voice agent of ``farm demo --room``: a real livekit-agents worker whose job uses the
real ``livekit-plugins-bithuman`` against the farm, and speaks a few lines.

Run by ``farm demo --room`` as ``python -m farm.devtools.demo_agent`` with LIVEKIT_URL / LIVEKIT_API_KEY /
LIVEKIT_API_SECRET and FARM_DEMO_* set; it registers as agent ``farm-demo`` and waits for a dispatch
whose metadata is ``{"api_url", "api_secret", "avatar_id", "lines": [...], "pause_s"}``. Needs the
``e2e`` extra (livekit-agents, livekit-plugins-bithuman).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import shutil
import subprocess
import tempfile
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobExecutorType
from livekit.plugins import bithuman

AGENT_NAME = "farm-demo"

log = logging.getLogger("farm.devtools.demo_agent")


def speak_pcm(text: str) -> tuple[np.ndarray, int]:
    """(int16 mono PCM, rate) of ``text``: espeak-ng when installed, else the farm's synthesiser."""
    espeak = shutil.which("espeak-ng")
    if espeak:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "line.wav"
            done = subprocess.run([espeak, "-w", str(path), text], capture_output=True, check=False)
            if done.returncode == 0 and path.exists():
                with wave.open(str(path)) as wav:
                    pcm = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
                    return pcm, wav.getframerate()
    from farm.devtools.demo import synth_speech

    return synth_speech(seconds=max(1.0, 0.07 * len(text))), 16_000


async def frames(pcm: np.ndarray, rate: int) -> AsyncIterator[rtc.AudioFrame]:
    step = rate // 50  # 20 ms, like a TTS stream
    for i in range(0, pcm.shape[0], step):
        chunk = pcm[i : i + step]
        yield rtc.AudioFrame(chunk.tobytes(), rate, 1, chunk.shape[0])


async def entrypoint(ctx: JobContext) -> None:
    spec: dict[str, Any] = json.loads(ctx.job.metadata or "{}")
    await ctx.connect()
    session: AgentSession[None] = AgentSession()
    avatar = bithuman.AvatarSession(
        api_url=spec["api_url"], api_secret=spec["api_secret"], avatar_id=spec["avatar_id"]
    )
    await avatar.start(session, room=ctx.room)
    await session.start(agent=Agent(instructions="A demo agent that reads its lines."), room=ctx.room)
    for round_no in range(int(spec.get("rounds", 1_000_000))):
        for line in spec.get("lines", []):
            pcm, rate = speak_pcm(line)
            handle = session.say(line, audio=frames(pcm, rate))
            await handle.wait_for_playout()
            log.info("line played out", extra={"round": round_no, "chars": len(line)})
            await asyncio.sleep(float(spec.get("pause_s", 1.5)))


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    server = AgentServer(
        job_executor_type=JobExecutorType.PROCESS,
        num_idle_processes=1,
        load_threshold=math.inf,
        load_fnc=lambda: 0.0,
        port=0,
    )
    server.rtc_session(entrypoint, agent_name=AGENT_NAME)
    asyncio.run(server.run(devmode=True))


if __name__ == "__main__":
    main()
