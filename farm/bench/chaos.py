"""`farm bench chaos`: faults injected into a real farm, and what the farm did about them.

Each scenario starts its own farm in a temporary directory: an embedded Redis on a fixed port (so it
can be killed and restarted where the workers expect it), the API, ``--workers`` Essence workers
and a build worker, all real subprocesses running the production entrypoints, and builds the sample
avatar once (``--size``, default the settings' ``essence_size``). Scenarios:

- ``worker-kill``: sessions stream on one worker, which gets SIGKILL (a crashed pod); a fresh worker
  is started in its place. Reported: seconds from the kill to the session streaming again on
  another worker (the STREAMING entry of its stored history, one machine so one clock), and whether
  the resumed output is frame-for-frame the output of an undisturbed run of the same session (its id,
  clip and pack rendered in this process through the worker's own path; decoded frames hashed).
- ``redis-restart``: Redis gets SIGKILL while sessions stream and API calls keep arriving; it comes
  back on the same port with the same data ``--outage-s`` later. Reported: worker processes alive
  (same PIDs), API answers by status during the outage (500s must be 0), how long ``/healthz``
  (no Redis) took meanwhile, sessions lost (never terminal, or gone), failed (with their codes) and
  claimed again.
- ``soak``: ``--sessions`` short sessions through the API at ``--in-flight`` at a time. Reported:
  lost, stuck (not terminal by the deadline), failed by code, and the Redis keys left behind without
  a TTL, grouped by pattern (ids replaced by ``*``), before and after; those that grew with the
  sessions are leaks unless trimmed to a cap (``CAPPED_KEYS``) and still within it.
- ``room-kill``: the worker publishing into a LiveKit room is killed (``farm.bench.chaos_room``).
- ``redis-freeze``: as ``redis-restart``, but Redis gets SIGSTOP and, ``--outage-s`` later, SIGCONT:
  a hung primary or a network partition, where connections stay open and calls wait for their
  socket timeout instead of failing at once. Keys with a TTL (leases, liveness) lapse during the
  freeze by Redis's clock, so this also shows whether the fleet mistakes a paused Redis for dead
  workers (``claimed_again``).

Prints JSON lines (progress, then the summary); ``--out`` also writes the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from farm.bench.common import emit, finish, parse_args, sample_clip, sample_portrait_png, summary
from farm.bench.roomfarm import add_livekit_args, livekit_target
from farm.client import TERMINAL, AvatarSession, SessionInfo
from farm.infra.embedded_redis import EmbeddedRedis
from farm.infra.procs import Child, LocalFarm, api_url, free_port
from farm.kernel import names
from farm.kernel.settings import Settings

LIVE_STATUSES = ("ASSIGNED", "STARTING", "STREAMING", "ENDING")
CAPPED_KEYS = {names.RECENT_SESSIONS_KEY: names.RECENT_SESSIONS_MAX}
"""Keys without a TTL that grow with sessions up to a cap (trimmed on every write): not a leak."""
_ID_LIKE = re.compile(r"(?<=[:|.])(?=[\w\-@]*\d)[\w\-@]{5,}")  # ids and hostnames, not words


@dataclass
class ChaosFarm:
    """A private farm whose parts can be killed: Redis on a fixed port, named worker children."""

    root: Path
    settings: Settings
    redis: EmbeddedRedis
    local: LocalFarm
    client: AvatarSession
    agent_id: str
    secret: str
    workers: list[Child] = field(default_factory=list)
    concurrency: int = 2

    def start_worker(self) -> Child:
        index = len(self.workers) + 1
        argv = [sys.executable, "-m", "farm.cli", "worker", "--queue", "essence"]
        argv += ["--concurrency", str(self.concurrency)]
        child = self.local.spawn(f"worker-essence-{index}", argv)
        self.workers.append(child)
        return child

    def worker_pid(self, worker_id: str) -> int | None:
        """The PID the worker registry gives for ``worker_id`` (its process runs the sessions)."""
        from farm.infra.redis_conn import connect
        from farm.sessions.registry import RedisWorkerRegistry

        for info in RedisWorkerRegistry(connect(self.redis_url)).list():
            if info.worker_id == worker_id:
                return info.pid
        return None

    @property
    def redis_url(self) -> str:
        assert self.redis.url is not None
        return self.redis.url

    def ready_workers(self) -> int:
        return int(self.client.fleet()["queues"].get("essence", {}).get("ready", 0))

    def wait_ready_workers(self, count: int, deadline_s: float = 120.0) -> None:
        _wait(lambda: self.ready_workers() >= count, deadline_s, f"{count} READY essence worker(s)")


def _wait(check: Callable[[], bool], deadline_s: float, what: str, poll_s: float = 0.1) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(poll_s)
    raise TimeoutError(f"timed out after {deadline_s:g} s waiting for {what}")


@contextmanager
def chaos_farm(
    workers: int = 2, concurrency: int = 2, root: Path | None = None, **overrides: Any
) -> Iterator[ChaosFarm]:
    """Start a private farm (see the module doc) in ``root`` (default: a temporary directory, removed
    on exit) and stop every part of it on exit. ``overrides`` are Settings fields (e.g. ``livekit_url``)."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="farm-chaos-")))
        yield stack.enter_context(_running_farm(root, workers, concurrency, overrides))


@contextmanager
def _running_farm(
    root: Path, workers: int, concurrency: int, overrides: dict[str, Any]
) -> Iterator[ChaosFarm]:
    from farm.infra.redis_conn import connect
    from farm.tenancy.api_keys import RedisKeyStore

    data_dir = root / "var"
    redis = EmbeddedRedis(data_dir, port=free_port())
    url = redis.start()
    settings = Settings.from_env(
        redis_url=url,
        data_dir=data_dir,
        output_dir=root / "out",
        api_port=free_port(),
        hot_avatars=4,
        **overrides,
    )
    local = LocalFarm(settings, dict(os.environ))
    local.start_redis()
    client: AvatarSession | None = None
    try:
        local.start_api()
        local.start_worker("build", concurrency=1)
        local.wait_api(deadline_s=120)
        _, secret = RedisKeyStore(connect(url)).create("chaos", "chaos")
        client = AvatarSession(api_url=api_url(settings), api_secret=secret, max_retries=0)
        farm = ChaosFarm(root, settings, redis, local, client, "", secret, concurrency=concurrency)
        for _ in range(workers):
            farm.start_worker()
        agent = client.wait_agent(client.create_agent(sample_portrait_png()).agent_id, deadline_s=600)
        if agent.status != "ready":
            raise RuntimeError(f"sample avatar build failed: {agent.raw}")
        farm.agent_id = agent.agent_id
        farm.wait_ready_workers(workers)
        yield farm
    finally:
        if client is not None:
            client.close()
        local.stop(grace_s=10.0)
        redis.stop()


# ---------------------------------------------------------------- helpers
def decoded_frame_hashes(path: str | Path) -> list[str]:
    """SHA-1 of every decoded video frame's RGB pixels (what a viewer sees), in order."""
    import av

    with av.open(str(path)) as container:
        return [
            hashlib.sha1(frame.to_ndarray(format="rgb24").tobytes()).hexdigest()
            for frame in container.decode(video=0)
        ]


def _first_at(session: SessionInfo, state: str, after: float) -> float | None:
    for change in session.history:
        if change["state"] == state and float(change["at"]) > after:
            return float(change["at"])
    return None


def _wait_terminal(client: AvatarSession, ids: Sequence[str], deadline_s: float) -> dict[str, SessionInfo]:
    """Poll until every session is terminal or the deadline passes (then the rest are as last seen)."""
    last: dict[str, SessionInfo] = {}
    end = time.monotonic() + deadline_s
    pending = list(ids)
    while pending and time.monotonic() < end:
        still = []
        for session_id in pending:
            try:
                info = client.get_session(session_id)
            except Exception:  # an outage or a lost record: keep looking until the deadline
                still.append(session_id)
                continue
            last[session_id] = info
            if info.status not in TERMINAL:
                still.append(session_id)
        pending = still
        if pending:
            time.sleep(0.2)
    return last


def _outcomes(ids: Sequence[str], seen: dict[str, SessionInfo]) -> dict[str, Any]:
    failed = Counter(
        str((info.raw.get("error") or info.raw.get("failure") or {}).get("code", "?"))
        for info in seen.values()
        if info.status == "FAILED"
    )
    return {
        "sessions": len(ids),
        "ended": sum(1 for info in seen.values() if info.status == "ENDED"),
        "claimed_again": sum(1 for info in seen.values() if int(info.raw.get("attempts") or 0) > 1),
        "failed": dict(failed),
        "stuck": sorted(i for i, info in seen.items() if info.status not in TERMINAL),
        "lost": sorted(i for i in ids if i not in seen),
    }


# ---------------------------------------------------------------- worker-kill
class UndisturbedRender:
    """A farm session's output as it would be without the fault: the same session id (its blinks and
    glances are seeded by it), clip and pack, rendered here through the worker's own path
    (``farm.bench.file_session``)."""

    def __init__(self, farm: ChaosFarm, audio: bytes) -> None:
        from farm.bench.file_session import FileSessions, essence_pool
        from farm.render.base import AvatarSource

        root = Path(tempfile.mkdtemp(prefix="undisturbed-", dir=farm.root))
        self.clip = root / "clip.wav"
        self.clip.write_bytes(audio)
        settings = farm.settings.model_copy(update={"data_dir": root / "var", "output_dir": root / "out"})
        pack = farm.settings.pack_dir / farm.agent_id  # where the build task wrote it
        avatar = AvatarSource(key=farm.agent_id, pack_path=pack)
        self.sessions = FileSessions(settings, essence_pool(), avatar)

    def frame_hashes(self, session_id: str) -> list[str]:
        rendered = self.sessions.render(session_id, self.clip)
        if rendered.session.state.value != "ENDED":
            raise RuntimeError(f"the undisturbed render of {session_id} ended {rendered.session.state}")
        return decoded_frame_hashes(rendered.output)

    def close(self) -> None:
        self.sessions.pool.close()


def worker_kill(farm: ChaosFarm, *, trials: int, clip_s: float) -> dict[str, Any]:
    """Kill the worker that streams a session, ``trials`` times; see the module doc."""
    audio = sample_clip(clip_s)
    undisturbed = UndisturbedRender(farm, audio)
    resume_s: list[float] = []
    exact = 0
    expected: list[str] = []
    results = []
    for trial in range(trials):
        created = farm.client.create_session(audio=audio, avatar_id=farm.agent_id)
        streaming = farm.client.wait_session(created.session_id, until={"STREAMING", *TERMINAL}, poll_s=0.02)
        worker_id = streaming.raw.get("worker_id")
        pid = farm.worker_pid(str(worker_id)) if worker_id else None
        if streaming.status != "STREAMING" or pid is None:
            raise RuntimeError(f"trial {trial}: session {streaming.status} on {worker_id} (pid {pid})")
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        farm.start_worker()  # what a Deployment does for a crashed pod
        done = farm.client.wait_session(created.session_id, deadline_s=120.0, poll_s=0.05)
        resumed_at = _first_at(done, "STREAMING", killed_at)
        frames = decoded_frame_hashes(done.raw["output"]) if done.status == "ENDED" else []
        expected = undisturbed.frame_hashes(created.session_id)
        same = frames == expected
        exact += same
        if resumed_at is not None:
            resume_s.append(resumed_at - killed_at)
        result = {
            "trial": trial,
            "status": done.status,
            "resume_s": None if resumed_at is None else round(resumed_at - killed_at, 3),
            "frames": len(frames),
            "frames_exact": same,
            "resumed_on": done.raw.get("worker_id"),
            "killed": worker_id,
            "failure": done.raw.get("failure"),  # why a trial's session did not end: code and message
        }
        results.append(result)
        emit({"bench": "chaos", "scenario": "worker-kill", **result})
        farm.wait_ready_workers(len(farm.workers) - trial - 1)
    undisturbed.close()
    return {
        "scenario": "worker-kill",
        "clip_s": clip_s,
        "expected_frames": len(expected),
        "trials": results,
        "resume_s": summary(resume_s, digits=3),
        "frames_exact": f"{exact}/{trials}",
        "target": "resume ≤ 3 s, frames exact",
    }


def _after_session(farm: ChaosFarm, session_id: str, since: float) -> tuple[str, float | None]:
    """The status of a new short session created once the fault was over (ENDED: the farm still
    works), and seconds from ``since`` (wall clock) to its claim (a worker consuming again)."""
    try:
        done = farm.client.wait_session(session_id, deadline_s=120.0)
    except TimeoutError:
        return f"{farm.client.get_session(session_id).status} after 120 s", None
    claimed = _first_at(done, "ASSIGNED", since)
    return done.status, None if claimed is None else round(claimed - since, 2)


# ---------------------------------------------------------------- redis-restart, redis-freeze
def redis_restart(farm: ChaosFarm, *, sessions: int, clip_s: float, outage_s: float) -> dict[str, Any]:
    """Kill Redis mid-stream, keep calling the API, restart it; see the module doc."""
    port = farm.redis.port

    def back() -> None:
        farm.redis.restart()
        assert farm.redis.port == port, "Redis must come back on the same port"

    return _redis_outage(
        farm,
        "redis-restart",
        down=farm.redis.kill,
        up=back,
        sessions=sessions,
        clip_s=clip_s,
        outage_s=outage_s,
    )


def redis_freeze(farm: ChaosFarm, *, sessions: int, clip_s: float, outage_s: float) -> dict[str, Any]:
    """SIGSTOP Redis mid-stream (a hung primary, a partition: connections open, no answers), SIGCONT
    it ``outage_s`` later; see the module doc."""
    from farm.infra.redis_conn import connect

    pid = int(connect(farm.redis_url).info("server")["process_id"])
    return _redis_outage(
        farm,
        "redis-freeze",
        down=lambda: os.kill(pid, signal.SIGSTOP),
        up=lambda: os.kill(pid, signal.SIGCONT),
        sessions=sessions,
        clip_s=clip_s,
        outage_s=outage_s,
    )


def _redis_outage(
    farm: ChaosFarm,
    scenario: str,
    *,
    down: Callable[[], None],
    up: Callable[[], None],
    sessions: int,
    clip_s: float,
    outage_s: float,
) -> dict[str, Any]:
    """Start ``sessions``, take Redis ``down`` once one streams, probe the API, bring it ``up``."""
    audio = sample_clip(clip_s)
    ids = [
        farm.client.create_session(audio=audio, avatar_id=farm.agent_id).session_id for _ in range(sessions)
    ]
    _wait(
        lambda: any(farm.client.get_session(i).status == "STREAMING" for i in ids),
        60.0,
        "a streaming session",
        poll_s=0.02,
    )
    pids = {child.name: child.process.pid for child in farm.local.children}
    statuses: Counter[str] = Counter()
    stop = threading.Event()
    prober = threading.Thread(target=_probe_api, args=(farm, ids[0], audio, statuses, stop), daemon=True)
    liveness_s: list[float] = []
    pulse = threading.Thread(target=_probe_healthz, args=(farm, liveness_s, stop), daemon=True)
    down()
    down_at = time.monotonic()
    prober.start()
    pulse.start()
    time.sleep(outage_s)
    up()
    up_at, up_wall = time.monotonic(), time.time()
    _wait(farm.client.ready, 60.0, "the API ready again")
    api_back_s = time.monotonic() - up_at
    stop.set()
    prober.join(10.0)
    pulse.join(10.0)
    probe = farm.client.create_session(audio=sample_clip(0.2), avatar_id=farm.agent_id).session_id
    seen = _wait_terminal(farm.client, ids, deadline_s=180.0)
    after, consuming_s = _after_session(farm, probe, up_wall)
    alive = {name: pid for name, pid in pids.items() if _alive(pid)}
    return {
        "scenario": scenario,
        "outage_s": round(up_at - down_at, 2),
        "api_ready_after_restart_s": round(api_back_s, 2),
        "api_answers_during_outage": dict(statuses),
        "api_500s": sum(n for code, n in statuses.items() if code == "500"),
        "healthz_s": summary(liveness_s, digits=3),
        "worker_processes": sum(1 for name in pids if name.startswith("worker")),
        "worker_processes_alive": sum(1 for name in alive if name.startswith("worker")),
        "processes_restarted": sorted(set(pids) - set(alive)),
        "new_session_after": after,
        "new_session_claimed_after_up_s": consuming_s,
        "ended_after_up_s": _ended_after(seen, up_wall),
        **_outcomes(ids, seen),
        "target": "0 × 500, 0 lost, workers alive",
    }


def _ended_after(seen: dict[str, SessionInfo], since: float) -> list[float | None]:
    """Seconds from ``since`` (wall clock) to each session's end, in creation order (negative: it
    ended before; None: it did not end): how long the fault held each one up."""
    ended = (_first_at(info, "ENDED", 0.0) for info in seen.values())
    return [None if at is None else round(at - since, 2) for at in ended]


def _probe_api(
    farm: ChaosFarm, session_id: str, audio: bytes, statuses: Counter[str], stop: threading.Event
) -> None:
    """Call a spread of routes until ``stop``; count answers by status ("conn" for no answer)."""
    base = api_url(farm.settings)
    headers = {names.HEADER_API_SECRET: farm.secret}
    calls: list[Callable[[httpx.Client], httpx.Response]] = [
        lambda c: c.get("/healthz"),
        lambda c: c.get("/readyz"),
        lambda c: c.get(f"/v1/sessions/{session_id}", headers=headers),
        lambda c: c.get("/v1/sessions", headers=headers),
        lambda c: c.get("/v1/fleet", headers=headers),
        lambda c: c.get(f"/v1/agents/{farm.agent_id}", headers=headers),
        lambda c: c.post(
            "/v1/sessions",
            headers=headers,
            files={"audio": ("a.wav", audio)},
            data={"avatar_id": farm.agent_id},
        ),
    ]
    with httpx.Client(base_url=base, timeout=5.0) as http:
        while not stop.is_set():
            for call in calls:
                try:
                    statuses[str(call(http).status_code)] += 1
                except httpx.HTTPError:
                    statuses["conn"] += 1
            time.sleep(0.05)


def _probe_healthz(farm: ChaosFarm, seconds: list[float], stop: threading.Event) -> None:
    """Time ``/healthz`` every 50 ms until ``stop``: it needs no Redis, so it stays fast only while no
    request holds the API's event loop (a timeout counts as its 5 s)."""
    with httpx.Client(base_url=api_url(farm.settings), timeout=5.0) as http:
        while not stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                http.get("/healthz")
            seconds.append(time.monotonic() - started)
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child counts as dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- soak
def soak(farm: ChaosFarm, *, sessions: int, in_flight: int) -> dict[str, Any]:
    """Many short sessions; then look for lost, stuck and leaked. See the module doc."""
    before = key_census(farm.redis_url)
    audio = sample_clip(0.2)
    ids: list[str] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        created = farm.client.create_session(audio=audio, avatar_id=farm.agent_id)
        with lock:
            ids.append(created.session_id)
        farm.client.wait_session(created.session_id, deadline_s=600.0, poll_s=0.1)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        for done, _ in enumerate(pool.map(one, range(sessions)), 1):
            if done % 100 == 0:
                emit({"bench": "chaos", "scenario": "soak", "progress": done, "of": sessions})
    wall_s = time.monotonic() - started
    seen = _wait_terminal(farm.client, ids, deadline_s=60.0)
    after = key_census(farm.redis_url)
    grown = {
        k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0) >= max(2, sessions // 10)
    }
    capped = {k: CAPPED_KEYS[k] for k in grown if k in CAPPED_KEYS and after[k] <= CAPPED_KEYS[k]}
    return {
        "scenario": "soak",
        "in_flight": in_flight,
        "wall_s": round(wall_s, 1),
        **_outcomes(ids, seen),
        "keys_without_ttl_before": before,
        "keys_without_ttl_after": after,
        "leaked_key_patterns": {k: n for k, n in grown.items() if k not in capped},
        "capped_key_patterns": {k: {"entries": after[k], "cap": cap} for k, cap in capped.items()},
        "target": "0 lost, 0 stuck, no key pattern without a TTL growing with sessions past a cap",
    }


def key_census(redis_url: str) -> dict[str, int]:
    """Entries held by keys without a TTL, by key pattern (ids → ``*``): members of a set, sorted
    set, list or hash, 1 for a string, so an index that only grows shows up as well as new keys."""
    from farm.infra.redis_conn import connect

    client = connect(redis_url)
    sizes = {b"set": client.scard, b"zset": client.zcard, b"list": client.llen, b"hash": client.hlen}
    counts: Counter[str] = Counter()
    for key in client.scan_iter(count=1000):
        if client.ttl(key) != -1:
            continue
        kind = client.type(key)
        size = sizes.get(kind if isinstance(kind, bytes) else str(kind).encode())
        name = key.decode() if isinstance(key, bytes) else str(key)
        counts[_ID_LIKE.sub("*", name)] += int(size(key)) if size else 1
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench chaos", description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario", choices=["worker-kill", "room-kill", "redis-restart", "redis-freeze", "soak"]
    )
    parser.add_argument("--workers", type=int, default=2, help="Essence workers at the start")
    parser.add_argument("--concurrency", type=int, default=2, help="sessions per worker")
    parser.add_argument("--trials", type=int, default=3, help="worker-kill: kills")
    parser.add_argument("--clip-s", type=float, default=6.0, help="worker-kill/redis-restart: speech length")
    parser.add_argument(
        "--outage-s", type=float, default=5.0, help="redis-restart/redis-freeze: how long Redis stays down"
    )
    parser.add_argument("--sessions", type=int, default=1000, help="soak: sessions; redis-restart: in flight")
    parser.add_argument("--in-flight", type=int, default=8, help="soak: concurrent sessions")
    parser.add_argument("--size", type=int, help="the sample avatar's frame size")
    parser.add_argument("--out", type=Path, help="also write the summary JSON here")
    add_livekit_args(parser)
    smoke = {
        "workers": 1,
        "concurrency": 2,
        "trials": 1,
        "clip_s": 2.0,
        "outage_s": 1.0,
        "sessions": 4,
        "in_flight": 2,
        "size": 128,
    }
    args = parse_args(parser, argv, smoke=smoke)
    phases = Phases(args.scenario)
    phases.enter("farm_start")
    if args.scenario == "room-kill":
        result = _room_kill(args, phases)
    else:
        with chaos_farm(workers=args.workers, concurrency=args.concurrency, **_size(args)) as farm:
            phases.enter("scenario")
            if args.scenario == "worker-kill":
                result = worker_kill(farm, trials=args.trials, clip_s=args.clip_s)
            elif args.scenario in ("redis-restart", "redis-freeze"):
                outage = redis_restart if args.scenario == "redis-restart" else redis_freeze
                sessions = min(args.sessions, 8)
                result = outage(farm, sessions=sessions, clip_s=args.clip_s, outage_s=args.outage_s)
            else:
                result = soak(farm, sessions=args.sessions, in_flight=args.in_flight)
            phases.enter("farm_stop")
    record = {"bench": "chaos", "workers": args.workers, "concurrency": args.concurrency, **result}
    record["phases_s"] = phases.done()
    finish(record, args.out, smoke=args.smoke)
    return 0


def _size(args: argparse.Namespace) -> dict[str, Any]:
    """The Settings override of ``--size`` (none without it: the settings' own essence_size)."""
    return {"essence_size": args.size} if args.size else {}


def _room_kill(args: argparse.Namespace, phases: Phases) -> dict[str, Any]:
    import asyncio

    from farm.bench.chaos_room import room_kill

    with (
        tempfile.TemporaryDirectory(prefix="farm-chaos-") as tmp,
        livekit_target(args.livekit_url, args.api_key, args.api_secret, Path(tmp)) as lk,
        chaos_farm(
            workers=args.workers,
            concurrency=args.concurrency,
            root=Path(tmp),
            livekit_url=lk.url,
            **_size(args),
        ) as farm,
    ):
        phases.enter("scenario")
        result = asyncio.run(room_kill(farm, lk, trials=args.trials))
        phases.enter("farm_stop")
        return result


class Phases:
    """Wall seconds of each phase of a run (farm start, the scenario, farm stop), each announced on
    stdout as it begins, so a slow run says where its time went."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def enter(self, phase: str) -> None:
        self._close()
        emit({"bench": "chaos", "scenario": self.scenario, "phase": phase})
        self._current = (phase, time.monotonic())

    def done(self) -> dict[str, float]:
        self._close()
        return self.seconds

    def _close(self) -> None:
        if self._current is not None:
            name, started = self._current
            self.seconds[name] = round(time.monotonic() - started, 2)
            self._current = None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
