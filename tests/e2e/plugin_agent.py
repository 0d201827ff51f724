"""A real livekit-agents worker whose jobs drive the real ``livekit-plugins-bithuman`` against the farm.

Run as ``python -m tests.e2e.plugin_agent`` with LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET;
it registers with the LiveKit server as agent ``farm-e2e`` (explicit dispatch). Each job is one
voice agent: a real ``AgentSession`` (no STT/LLM/TTS: speech is given as audio frames) with
``bithuman.AvatarSession(api_url=<farm>, api_secret=…, avatar_id|avatar_image, model).start(...)``
inside the job context, exactly as a user's agent does. The job's metadata (JSON) says what to do:

    {"api_url": ..., "api_secret": ..., "avatar_id": ... | "image_path": ..., "model": ...,
     "report": "/path/report.jsonl", "steps": ["say", "interrupt", "dynamics", "hold", "leave"]}

and every outcome is appended to ``report`` as one JSON line, which the test reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobExecutorType
from livekit.plugins import bithuman
from PIL import Image

AGENT_NAME = "farm-e2e"
AVATAR_IDENTITY = "bithuman-avatar-agent"
RATE = 24_000

log = logging.getLogger("plugin-agent")


def speech(seconds: float) -> np.ndarray:
    """A loud warbling tone (speech stand-in), int16 mono at ``RATE``."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (11_000 * np.sin(2 * math.pi * 220.0 * t * (1.0 + 0.4 * np.sin(2 * math.pi * 3.0 * t)))).astype(
        np.int16
    )


async def frames(seconds: float) -> AsyncIterator[rtc.AudioFrame]:
    pcm = speech(seconds)
    step = RATE // 50  # 20 ms frames, like a TTS
    for i in range(0, pcm.shape[0], step):
        chunk = pcm[i : i + step]
        yield rtc.AudioFrame(chunk.tobytes(), RATE, 1, chunk.shape[0])


class Report:
    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def write(self, step: str, **fields: Any) -> None:
        with self._path.open("a") as out:
            out.write(json.dumps({"step": step, "t": time.time(), **fields}) + "\n")


async def wait_for_avatar(room: rtc.Room, timeout_s: float = 30.0) -> bool:
    """True once the avatar participant publishes video (its join finished)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        avatar = room.remote_participants.get(AVATAR_IDENTITY)
        if avatar is not None and any(
            pub.kind == rtc.TrackKind.KIND_VIDEO for pub in avatar.track_publications.values()
        ):
            return True
        await asyncio.sleep(0.05)
    return False


async def run_steps(ctx: JobContext, session: AgentSession, spec: dict[str, Any], report: Report) -> None:
    finished: list[dict[str, Any]] = []
    audio_out = session.output.audio
    assert audio_out is not None
    audio_out.on(
        "playback_finished",
        lambda ev: finished.append(
            {"position": ev.playback_position, "interrupted": ev.interrupted, "at": time.monotonic()}
        ),
    )
    for step in spec.get("steps", []):
        if step == "say":
            before = len(finished)
            handle = session.say("hello", audio=frames(1.2), allow_interruptions=True)
            await asyncio.wait_for(handle.wait_for_playout(), 30)
            await asyncio.sleep(0.5)  # a second report would arrive now
            report.write("say", finished=finished[before:], interrupted=handle.interrupted)
        elif step == "interrupt":
            before = len(finished)
            handle = session.say("a long answer", audio=frames(6.0), allow_interruptions=True)
            await asyncio.sleep(1.5)
            asked = time.monotonic()
            session.interrupt()
            await asyncio.wait_for(handle.wait_for_playout(), 30)
            cut = [f for f in finished[before:] if f["interrupted"]]
            report.write(
                "interrupt",
                finished=finished[before:],
                interrupted=handle.interrupted,
                interrupt_to_playout_ms=(time.monotonic() - asked) * 1000.0,
                interrupt_to_report_ms=(cut[0]["at"] - asked) * 1000.0 if cut else None,
            )
        elif step == "burst":  # interrupts in a row, each answered by its own interrupted report
            latencies_ms: list[float] = []
            reports: list[dict[str, Any]] = []
            for _ in range(int(spec.get("burst_count", 20))):
                before = len(finished)
                handle = session.say("another answer", audio=frames(4.0), allow_interruptions=True)
                await asyncio.sleep(float(spec.get("burst_gap_s", 0.4)))
                asked = time.monotonic()
                session.interrupt()
                await asyncio.wait_for(handle.wait_for_playout(), 30)
                got = finished[before:]
                reports.extend(got)
                cut = [f for f in got if f["interrupted"]]
                latencies_ms.append((cut[0]["at"] - asked) * 1000.0 if cut else -1.0)
            report.write("burst", finished=reports, latencies_ms=latencies_ms)
        elif step == "answer":  # one more turn after everything above: it must play out, audible
            await asyncio.sleep(1.0)  # a pause: a viewer hears it as its own stretch of speech
            before = len(finished)
            handle = session.say("the answer", audio=frames(1.5), allow_interruptions=True)
            await asyncio.wait_for(handle.wait_for_playout(), 30)
            await asyncio.sleep(0.5)
            report.write("answer", finished=finished[before:], interrupted=handle.interrupted)
        elif step == "dynamics":
            reply = await ctx.room.local_participant.perform_rpc(
                destination_identity=AVATAR_IDENTITY,
                method="trigger_dynamics",
                payload=json.dumps({"action": "talk_head_nod_subtle"}),  # Essence and Expression have it
            )
            report.write("dynamics", reply=json.loads(reply))
        elif step == "go":  # wait for the test's word (a file): every room starts its turns together
            go = Path(spec["go_file"])
            deadline = time.monotonic() + 180.0
            while not go.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        elif step == "hold":
            await asyncio.sleep(float(spec.get("hold_s", 30.0)))
        elif step == "leave":
            report.write("leave")
            ctx.shutdown("test script done")
            return


async def entrypoint(ctx: JobContext) -> None:
    """One voice agent (module level: job processes import it by name)."""
    spec = json.loads(ctx.job.metadata or "{}")
    report = Report(spec["report"])
    await ctx.connect()
    session = AgentSession()
    kwargs: dict[str, Any] = {"api_url": spec["api_url"], "api_secret": spec["api_secret"]}
    if spec.get("avatar_id"):
        kwargs["avatar_id"] = spec["avatar_id"]
    if spec.get("image_path"):
        kwargs["avatar_image"] = Image.open(spec["image_path"])
    if spec.get("model"):
        kwargs["model"] = spec["model"]
    avatar = bithuman.AvatarSession(**kwargs)
    started = time.monotonic()
    try:
        await avatar.start(session, room=ctx.room)
    except Exception as exc:
        report.write("start", ok=False, error=f"{type(exc).__name__}: {exc}")
        ctx.shutdown("avatar start failed")
        return
    await session.start(agent=Agent(instructions="You are a test agent."), room=ctx.room)
    joined = await wait_for_avatar(ctx.room)
    report.write("start", ok=True, joined=joined, start_to_join_ms=(time.monotonic() - started) * 1000.0)
    if joined:
        await run_steps(ctx, session, spec, report)


def build_server() -> AgentServer:
    # One process per job, as in production (livekit-agents' default): each job's rooms live on its
    # own process's event loop. Idle processes are forked ahead so N simultaneous dispatches start at once.
    idle = int(os.environ.get("PLUGIN_AGENT_IDLE_PROCESSES", "4"))
    server = AgentServer(
        job_executor_type=JobExecutorType.PROCESS,
        num_idle_processes=idle,
        initialize_process_timeout=60.0,
        # Always available: the test decides how many agents run; CPU load on a 2-core CI machine
        # must not make the worker refuse a dispatch ("no servers available").
        load_threshold=math.inf,
        load_fnc=lambda: 0.0,
        port=0,
    )
    server.rtc_session(entrypoint, agent_name=AGENT_NAME)
    return server


def main() -> None:
    logging.basicConfig(level=os.environ.get("PLUGIN_AGENT_LOG", "INFO"))
    asyncio.run(build_server().run(devmode=True))


if __name__ == "__main__":
    main()
