"""``farm bench dynamics``: latency from a gesture trigger to the first rendered frame of that gesture.

Ten live Essence sessions (real ``EssenceRenderer``s over one pack, each speaking and paced at
25 fps on one event loop) are attached to a ``WorkerDynamics`` whose process subscribes to
the dynamics topic of a real Redis-compatible server (an embedded valkey unless ``--redis-url``).
A driver thread triggers one idle session at a time, cycling gestures so no cooldown applies, via

* ``--via api`` (default): ``POST /v1/sessions/{id}/dynamics`` on the production app (``build_app``)
  served by uvicorn on loopback: HTTP → PUBLISH → subscriber thread → LocalSession.trigger → frame;
* ``--via bus``: ``broadcast()`` straight onto the topic (what the route does, without HTTP).

Latency = wall time from just before the trigger call to the moment the session's frame loop has
rendered the first frame whose ``gesture`` is the triggered one. A frame is due every 40 ms, so the
floor is the wait for the next tick. Prints one JSON object (``--out`` also writes it); target p95 ≤
80 ms (two frames).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.bench.common import finish, parse_args, percentile, summary
from farm.dynamics.router import LocalSessions
from farm.dynamics.rules import MemoryRulesStore
from farm.dynamics.worker import AttachedSession, WorkerDynamics
from farm.render.base import FPS, AvatarSource, Renderer

TARGET_P95_MS = 80.0
TENANT = "bench"


@dataclass(frozen=True, slots=True)
class GestureStart:
    """A session rendered the first frame of a gesture at wall time ``at`` (``time.time()``)."""

    session_id: str
    action: str
    at: float
    frame_index: int


class PacedSession:
    """One live session: a renderer producing a frame every 1/fps s, optionally speaking all along."""

    def __init__(
        self,
        session_id: str,
        renderer: Renderer,
        on_start: Callable[[GestureStart], None],
        *,
        speech: np.ndarray | None = None,
    ) -> None:
        self.session_id = session_id
        self.renderer = renderer
        self._on_start = on_start
        self._speech = speech
        self.current: str | None = None  # gesture visible in the last frame
        self.frames = 0
        self.late_ticks = 0  # ticks rendered more than one frame late (loop overload)

    async def run(self, stop: asyncio.Event, fps: int = FPS) -> None:
        loop = asyncio.get_running_loop()
        frame_s = 1.0 / fps
        next_tick = loop.time()
        while not stop.is_set():
            if self._speech is not None and self.renderer.pending_frames() < fps:
                self.renderer.push_audio(self._speech, 16_000)
            frame = self.renderer.next_frame()
            self.frames += 1
            if frame.gesture is not None and frame.gesture != self.current:
                self._on_start(GestureStart(self.session_id, frame.gesture, time.time(), frame.index))
            self.current = frame.gesture
            next_tick += frame_s
            delay = next_tick - loop.time()
            if delay < -frame_s:
                self.late_ticks += 1
            await asyncio.sleep(max(0.0, delay))


class SessionHost:
    """The live sessions of one process, attached to its WorkerDynamics (and so to the topic)."""

    def __init__(self, dynamics: WorkerDynamics, open_renderer: Callable[[str], Renderer]) -> None:
        self.dynamics = dynamics
        self._open_renderer = open_renderer
        self.sessions: dict[str, PacedSession] = {}
        self.attached: dict[str, AttachedSession] = {}
        self.starts: list[GestureStart] = []
        self._listeners: list[Callable[[GestureStart], None]] = []
        self._lock = threading.Lock()

    def add_listener(self, listener: Callable[[GestureStart], None]) -> None:
        self._listeners.append(listener)

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        session_id: str,
        agent_id: str,
        *,
        tenant: str = TENANT,
        speech: np.ndarray | None = None,
    ) -> AttachedSession:
        """Open a renderer and attach the session, as a SessionRunner does (triggers run on ``loop``)."""
        renderer = self._open_renderer(session_id)
        self.sessions[session_id] = PacedSession(session_id, renderer, self._started, speech=speech)
        attached = self.dynamics.attach(
            session_id=session_id,
            tenant=tenant,
            agent_id=agent_id,
            gestures=renderer.gestures,
            trigger=renderer.trigger,
            loop=loop,
        )
        self.attached[session_id] = attached
        return attached

    def _started(self, start: GestureStart) -> None:
        with self._lock:
            self.starts.append(start)
        for listener in self._listeners:
            listener(start)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(s.run(stop) for s in self.sessions.values()))
        for session_id, session in self.sessions.items():
            self.attached[session_id].detach()
            session.renderer.close()


def essence_renderers(pack_dir: Path) -> Callable[[str], Renderer]:
    """Open EssenceRenderers over one pack loaded once (the worker's shared avatar)."""
    from farm.render.essence import EssenceEngine

    engine = EssenceEngine()
    avatar = engine.load_avatar(AvatarSource(key="bench", pack_path=pack_dir))
    return lambda session_id: engine.open_session(avatar, session_id)


def build_sample_pack(out_dir: Path, size: int) -> Path:
    """The sample portrait's pack (a few seconds of CPU)."""
    from farm.render.essence import build_pack, sample_portrait

    return build_pack(sample_portrait(), out_dir, size=size)


# ---------------------------------------------------------------- measurement


@dataclass
class Expectations:
    """Triggers in flight: session → (action, t0); resolved by the session's next start of it."""

    pending: dict[str, tuple[str, float]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    resolved: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.resolved = threading.Condition(self.lock)

    def expect(self, session_id: str, action: str) -> None:
        with self.lock:
            self.pending[session_id] = (action, time.time())

    def on_start(self, start: GestureStart) -> None:
        with self.lock:
            expected = self.pending.get(start.session_id)
            if expected is not None and expected[0] == start.action:
                del self.pending[start.session_id]
                self.latencies_ms.append((start.at - expected[1]) * 1000.0)
                self.resolved.notify_all()

    def wait(self, session_id: str, timeout_s: float) -> bool:
        """True when the session's trigger resolved; False (and forgotten) after ``timeout_s``."""
        with self.lock:
            done = self.resolved.wait_for(lambda: session_id not in self.pending, timeout_s)
            self.pending.pop(session_id, None)
            return done


def drive(
    host: SessionHost,
    expectations: Expectations,
    trigger: Callable[[str, str], None],
    *,
    triggers: int,
    gap_s: float,
    timeout_s: float = 2.0,
) -> dict[str, int]:
    """Trigger ``triggers`` times, one session at a time while it shows no gesture; count outcomes."""
    sessions = list(host.sessions.values())
    cycle = {s.session_id: itertools.cycle(s.renderer.gestures) for s in sessions}
    order = itertools.cycle(sessions)
    counts = {"sent": 0, "missed": 0}
    while counts["sent"] < triggers:
        session = next(order)
        if session.current is not None:
            time.sleep(0.005)
            continue
        action = next(cycle[session.session_id])
        expectations.expect(session.session_id, action)
        trigger(session.session_id, action)
        counts["sent"] += 1
        if not expectations.wait(session.session_id, timeout_s):
            counts["missed"] += 1
        time.sleep(gap_s)
    return counts


# ---------------------------------------------------------------- trigger paths


@contextlib.contextmanager
def embedded_redis(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from farm.infra.embedded_redis import (
        EmbeddedRedis,  # the one embedded-Redis starter (farm up uses it too)
    )

    with tempfile.TemporaryDirectory(prefix="bench-valkey-") as tmp, EmbeddedRedis(Path(tmp)) as server:
        assert server.url is not None  # set by start()
        yield server.url


@contextlib.contextmanager
def api_trigger(
    redis_url: str, data_dir: Path, agent_id: str, sessions: Mapping[str, list[str]]
) -> Iterator[Any]:
    """Serve the production app on loopback; yield ``trigger(session_id, action)`` over HTTP."""
    import httpx
    import uvicorn

    from farm.api.app import build_app
    from farm.api.server import uvicorn_config
    from farm.infra.redis_conn import connect
    from farm.kernel.domain import Agent, AgentStatus, ModelKind, Session
    from farm.kernel.settings import Settings
    from farm.sessions.agents import RedisAgentStore
    from farm.sessions.redis_store import RedisSessionStore
    from farm.tenancy.api_keys import RedisKeyStore

    client = connect(redis_url)
    _, secret = RedisKeyStore(client).create(TENANT, "bench")
    gestures = sorted({g for names in sessions.values() for g in names})
    ref = "sha256/" + "0" * 64 + ".png"
    RedisAgentStore(client).create(
        Agent(id=agent_id, tenant=TENANT, status=AgentStatus.READY, image_ref=ref, gestures=gestures)
    )
    store = RedisSessionStore(client)
    for session_id in sessions:
        store.create(Session(id=session_id, tenant=TENANT, model=ModelKind.ESSENCE, avatar_id=agent_id))
    settings = Settings.model_validate({"redis_url": redis_url, "data_dir": data_dir})
    config = uvicorn_config(build_app(settings), settings, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="bench-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"api-secret": secret})
    response_ms: list[float] = []

    def trigger(session_id: str, action: str) -> None:
        started = time.perf_counter()
        response = http.post(f"/v1/sessions/{session_id}/dynamics", json={"action": action})
        response_ms.append((time.perf_counter() - started) * 1000.0)
        response.raise_for_status()

    trigger.response_ms = response_ms  # type: ignore[attr-defined]
    try:
        yield trigger
    finally:
        http.close()
        server.should_exit = True
        thread.join(timeout=10)
        client.close()


@contextlib.contextmanager
def bus_trigger(redis_url: str, agent_id: str) -> Iterator[Any]:
    """Yield ``trigger(session_id, action)`` publishing straight on the dynamics topic."""
    from farm.dynamics.base import broadcast
    from farm.dynamics.redis_bus import RedisDynamicsBus
    from farm.kernel.contracts import DynamicsMessage

    publisher = RedisDynamicsBus(redis_url)

    def trigger(session_id: str, action: str) -> None:
        message = DynamicsMessage(tenant=TENANT, action=action, session_id=session_id, agent_id=agent_id)
        broadcast(publisher, message, wait_s=0.0)

    try:
        yield trigger
    finally:
        publisher.close()


# ---------------------------------------------------------------- main


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="farm bench dynamics", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--triggers", type=int, default=200)
    parser.add_argument("--via", choices=("api", "bus"), default="api")
    parser.add_argument("--size", type=int, default=512, help="frame size of the sample pack")
    parser.add_argument("--pack", type=Path, help="an existing Essence pack (default: build the sample)")
    parser.add_argument("--redis-url", help="default: start an embedded valkey")
    parser.add_argument("--gap-s", type=float, default=0.02, help="pause between triggers")
    parser.add_argument("--silent", action="store_true", help="sessions idle instead of speaking")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    return parse_args(parser, argv, smoke={"sessions": 1, "triggers": 2, "size": 128})


def run(args: argparse.Namespace, pack_dir: Path, redis_url: str, data_dir: Path) -> dict[str, Any]:
    from farm.bench.common import speech_like
    from farm.dynamics.redis_bus import RedisDynamicsBus

    agent_id = "B" + uuid.uuid4().hex[:9].upper()
    bus = RedisDynamicsBus(redis_url, worker_id="bench-worker")
    host = SessionHost(
        WorkerDynamics(LocalSessions("bench-worker"), bus, MemoryRulesStore()), essence_renderers(pack_dir)
    )
    expectations = Expectations()
    host.add_listener(expectations.on_start)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    speech = None if args.silent else speech_like(4.0)
    # Real session ids (32 hex digits): the API's path pattern refuses anything else with a 400.
    session_ids = [uuid.uuid4().hex for _ in range(args.sessions)]
    for session_id in session_ids:
        host.add(loop, session_id, agent_id, speech=speech)
    host.dynamics.start()
    if not bus.wait_subscribed(10):
        raise RuntimeError("the dynamics subscriber did not subscribe")
    loop_thread = threading.Thread(target=loop.run_until_complete, args=(host.run(stop),), daemon=True)
    loop_thread.start()
    if args.via == "api":
        gestures = {sid: list(s.renderer.gestures) for sid, s in host.sessions.items()}
        paths = api_trigger(redis_url, data_dir, agent_id, gestures)
    else:
        paths = bus_trigger(redis_url, agent_id)
    try:
        with paths as trigger:
            time.sleep(0.5)  # let the sessions reach their steady pace
            frames_before = sum(s.frames for s in host.sessions.values())
            started = time.perf_counter()
            counts = drive(host, expectations, trigger, triggers=args.triggers, gap_s=args.gap_s)
            elapsed_s = time.perf_counter() - started
            response_ms = list(getattr(trigger, "response_ms", []))
    finally:
        loop.call_soon_threadsafe(stop.set)
        loop_thread.join(timeout=10)
        bus.close()
    frames = sum(s.frames for s in host.sessions.values()) - frames_before
    return report(
        args,
        host=host,
        latencies=expectations.latencies_ms,
        counts=counts,
        elapsed_s=elapsed_s,
        response_ms=response_ms,
        frames=frames,
    )


def report(
    args: argparse.Namespace,
    *,
    host: SessionHost,
    latencies: list[float],
    counts: dict[str, int],
    elapsed_s: float,
    response_ms: list[float],
    frames: int,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "bench": "dynamics",
        "via": args.via,
        "sessions": args.sessions,
        "speaking": not args.silent,
        "frame_size": args.size if args.pack is None else None,
        "fps": FPS,
        "triggers": counts["sent"],
        "measured": len(latencies),
        "missed": counts["missed"],
        "latency_ms": summary(latencies, digits=2),
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": bool(latencies) and percentile(latencies, 95) <= TARGET_P95_MS,
        "late_ticks": sum(s.late_ticks for s in host.sessions.values()),
        "achieved_fps_per_session": round(frames / max(1, args.sessions) / max(elapsed_s, 1e-9), 2),
        "elapsed_s": round(elapsed_s, 2),
    }
    if response_ms:
        result["api_response_ms"] = summary(response_ms, digits=2)
    return result


def main(argv: list[str]) -> int:
    args = _parse(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-dynamics-") as tmp:
        pack_dir = args.pack or build_sample_pack(Path(tmp) / "pack", args.size)
        with embedded_redis(args.redis_url) as redis_url:
            result = run(args, pack_dir, redis_url, Path(tmp) / "var")
    finish(result, args.out, smoke=args.smoke)
    return 0 if result["measured"] else 1
