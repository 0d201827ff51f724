"""A render-worker process for the dynamics integration tests.

What a farm worker process does for dynamics, with real parts: ``WorkerDynamics.connect`` (one
``RedisDynamicsBus`` subscription, a ``LocalSessions`` registry, rules from ``RedisRulesStore``) and
real ``EssenceRenderer``s paced at 25 fps on an event loop, each attached as a SessionRunner
attaches its session (the agent's cooldowns and keyword rules are read from Redis then).

Run: ``python -m tests.integration.dynamics_worker '<config json>'`` with config
``{"redis_url", "worker_id", "pack", "sessions": [{"session_id", "tenant", "agent_id"}]}``.
Stdin, one JSON command a line: ``{"cmd": "transcript", "session_id", "segment_id", "chunks": [..]}``
(one ``lk.transcription`` text stream) or ``{"cmd": "quit"}``. Stdout, one JSON event a line:
``ready``, ``gesture`` (first frame of a gesture rendered), ``transcript`` (what the rules fired),
``stats`` (on quit).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from farm.bench.dynamics import GestureStart, SessionHost, essence_renderers
from farm.dynamics.redis_bus import RedisDynamicsBus
from farm.dynamics.worker import WorkerDynamics

_out_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()


class _Info:
    def __init__(self, segment_id: str) -> None:
        self.stream_id = f"TS_{segment_id}"
        self.attributes = {"lk.segment_id": segment_id}


class ScriptedTextStream:
    """A text stream whose chunks come from a test command (stands in for a TextStreamReader)."""

    def __init__(self, segment_id: str, chunks: list[str]) -> None:
        self.info = _Info(segment_id)
        self._chunks = chunks

    async def _gen(self) -> AsyncIterator[str]:
        for chunk in self._chunks:
            yield chunk
            await asyncio.sleep(0.01)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._gen()


async def serve(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    dynamics = WorkerDynamics.connect(config["redis_url"], config["worker_id"])
    host = SessionHost(dynamics, essence_renderers(Path(config["pack"])))
    host.add_listener(lambda s: emit("gesture", **_start_fields(s)))
    for spec in config["sessions"]:
        host.add(loop, spec["session_id"], spec["agent_id"], tenant=spec["tenant"])
    bus = dynamics.bus
    assert isinstance(bus, RedisDynamicsBus)
    if not bus.wait_subscribed(10):
        raise RuntimeError("no subscription")
    stop = asyncio.Event()
    running = asyncio.create_task(host.run(stop))
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    threading.Thread(target=_read_stdin, args=(loop, commands), daemon=True).start()
    emit("ready", worker_id=config["worker_id"])
    while True:
        command = await commands.get()
        if command["cmd"] == "quit":
            break
        stream = ScriptedTextStream(command["segment_id"], command["chunks"])
        results = await host.attached[command["session_id"]].watch(stream)
        emit("transcript", results=[[r.action, r.animation_triggered, r.reason] for r in results])
    stop.set()
    await running
    dynamics.close()
    emit("stats", **bus.stats.__dict__)


def _start_fields(start: GestureStart) -> dict[str, Any]:
    return {"session_id": start.session_id, "action": start.action, "at": start.at}


def _read_stdin(loop: asyncio.AbstractEventLoop, commands: asyncio.Queue[dict[str, Any]]) -> None:
    for line in sys.stdin:
        if line.strip():
            loop.call_soon_threadsafe(commands.put_nowait, json.loads(line))
    loop.call_soon_threadsafe(commands.put_nowait, {"cmd": "quit"})


if __name__ == "__main__":
    asyncio.run(serve(json.loads(sys.argv[1])))
