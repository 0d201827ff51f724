"""``farm bench redis_load``: Redis load per live session, fake-engine workers' loops on one server.

``farm bench redis_load [--workers 2,8,16] [--sessions 400] [--seconds 10] [--out FILE] [--smoke]``

Each fake worker is a thread with its own connection that runs, at the real cadences
(``Settings``: lease renewal 2 s, heartbeat 5 s, reaper/rescuer pass 3 s), exactly the Redis calls
the worker core makes for its share of the live sessions, through the real classes
(``RedisSessionStore``, ``RedisWorkerRegistry``, ``Reaper``, ``StrandedRescuer``); the engine renders
nothing (it touches no Redis). Two modes:

- ``before``: the loops as they were before the change: ``renew`` + a ``stop_requested`` poll 4×/s
  per session, and every worker re-reading every live session record (``ZRANGE`` + ``MGET``) each
  rescuer pass.
- ``after``: ``renew_and_check_stop`` once per renewal, the rescuer's warm-pending index under a
  fleet lock, the reaper's lease-existence pass.

Reported: commands/s and bytes/s (in + out, from ``INFO stats``) per live session, per worker
count. The claim: ``after`` is flat in the number of workers.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast

import redis

from farm.bench.common import emit, finish, parse_args
from farm.infra.embedded_redis import EmbeddedRedis
from farm.infra.redis_conn import connect
from farm.kernel import names
from farm.kernel.contracts import WorkerInfo
from farm.kernel.domain import ModelKind, Session
from farm.kernel.settings import Settings
from farm.sessions.base import Lease
from farm.sessions.reaper import Reaper, RedisReaperLock
from farm.sessions.redis_store import RedisSessionStore
from farm.sessions.registry import RedisWorkerRegistry
from farm.sessions.warm import StrandedRescuer


class _NoQueue:
    def submit(self, message: object) -> None:  # nothing is stranded or orphaned in this load
        raise AssertionError(f"unexpected re-submit {message}")


def _worker(url: str, worker_id: str, leases: list[Lease], mode: str, stop: threading.Event) -> None:
    s = Settings.from_env()
    client = connect(url)
    store = RedisSessionStore(client)
    registry = RedisWorkerRegistry(client)
    reaper = Reaper(
        store, _NoQueue(), RedisReaperLock(client, worker_id, s.reaper_interval_s), max_attempts=3
    )
    rescuer = StrandedRescuer(client, registry, _NoQueue(), s.warm_route_max_wait_s, holder=worker_id)
    info = WorkerInfo(
        worker_id=worker_id, hostname="bench", pid=0, queues=["essence"], state="READY", capacity=len(leases)
    )
    due = {"renew": 0.0, "stop": 0.0, "beat": 0.0, "pass": 0.0}
    while not stop.is_set():
        now = time.monotonic()
        if now >= due["renew"]:
            due["renew"] = now + s.lease_renew_s
            for lease in leases:
                if mode == "after":
                    store.renew_and_check_stop(lease, s.lease_ttl_s)
                else:
                    store.renew(lease, s.lease_ttl_s)
        if mode == "before" and now >= due["stop"]:
            due["stop"] = now + 0.25
            for lease in leases:
                store.stop_requested(lease.session_id)
        if now >= due["beat"]:
            due["beat"] = now + s.heartbeat_s
            registry.publish(info.model_copy(update={"active_sessions": len(leases)}), s.worker_ttl_s)
        if now >= due["pass"]:
            due["pass"] = now + s.reaper_interval_s
            reaper.run_once()
            if mode == "after":
                rescuer.run_once()
            else:  # the old rescuer: every worker re-reads every live session record
                ids = client.zrange(names.LIVE_SESSIONS_KEY, 0, -1)
                if ids:
                    client.mget([names.session_key(i) for i in ids])
        stop.wait(0.02)
    client.close()


def _stats(client: redis.Redis) -> tuple[int, int]:
    info = cast("dict[str, Any]", client.info("stats"))
    return int(info["total_commands_processed"]), int(info["total_net_input_bytes"]) + int(
        info["total_net_output_bytes"]
    )


def measure(url: str, workers: int, sessions: int, seconds: float, mode: str) -> dict[str, Any]:
    client = connect(url)
    client.flushdb()
    store = RedisSessionStore(client)
    leases: list[Lease] = []
    for i in range(sessions):
        session = Session(
            id=uuid.uuid4().hex, tenant="bench", model=ModelKind.ESSENCE, avatar_id="A0000000001"
        )
        store.create(session)
        lease = store.claim(session.id, f"w{i % workers}", 30)
        assert lease is not None
        leases.append(lease)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_worker, args=(url, f"w{w}", leases[w::workers], mode, stop), daemon=True)
        for w in range(workers)
    ]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let every loop run its first round (heartbeats, first pass)
    cmds0, bytes0 = _stats(client)
    started = time.monotonic()
    stop.wait(seconds)
    cmds1, bytes1 = _stats(client)
    elapsed = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join()
    client.close()
    return {
        "mode": mode,
        "workers": workers,
        "sessions": sessions,
        "seconds": round(elapsed, 2),
        "ops_per_s_per_session": round((cmds1 - cmds0) / elapsed / sessions, 3),
        "bytes_per_s_per_session": round((bytes1 - bytes0) / elapsed / sessions, 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="farm bench redis_load", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="2,8,16", help="fake worker counts (comma-separated)")
    parser.add_argument("--sessions", type=int, default=400, help="live sessions shared by the workers")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per row")
    parser.add_argument("--out", type=Path, help="also write the summary JSON here")
    args = parse_args(parser, argv, smoke={"workers": "2", "sessions": 4, "seconds": 1.0})
    rows = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp)) as server:
        url = server.url or server.start()
        for mode in ("before", "after"):
            for workers in (int(w) for w in args.workers.split(",")):
                row = measure(url, workers, args.sessions, args.seconds, mode)
                emit({"bench": "redis_load", "progress": row})
                rows.append(row)
    after = [r for r in rows if r["mode"] == "after"]
    worst = max(r["bytes_per_s_per_session"] for r in after)
    summary = {
        "bench": "redis_load",
        "rows": rows,
        "projection_10000_sessions": {
            "after_ops_per_s": round(max(r["ops_per_s_per_session"] for r in after) * 10_000),
            "after_bytes_per_s": round(worst * 10_000),
        },
    }
    finish(summary, args.out, smoke=args.smoke)
    return 0
