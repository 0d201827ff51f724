"""`farm bench dispatch`: API request → session claimed by a warm worker, over many sessions.

For each session: ``t0`` = the client's clock just before ``POST /v1/sessions``; the claim time is
the ``ASSIGNED`` timestamp in the session's stored history (the worker's clock; one machine, so
one clock). Reported: median / p90 / p99 / max of ``t_claim - t0`` and its two parts, the API call
(``t0`` → 201) and ``QUEUED → ASSIGNED`` (both stored timestamps). Sessions are posted one at a
time. ``--pace idle`` (default) posts the next one after the previous ENDED, so every claim meets
an idle warm worker: the pure hand-off. ``--pace claimed`` posts as soon as the previous one is
claimed, so sessions overlap and claims include waiting for a free slot. Not a saturation test.

``--warmup-sessions`` (default 10) run first and are not counted. Without ``--api-url`` it starts its
own farm in a temporary directory (embedded Redis, API, one essence worker and one build worker as
subprocesses), builds the sample avatar once (``--size``, default the settings' ``essence_size``) and
runs against it. Prints one JSON object per line: progress, then the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.bench.common import emit, finish, parse_args, percentile, sample_clip, sample_portrait_png
from farm.client import AvatarSession, SessionInfo
from farm.infra.procs import free_port
from farm.kernel.settings import Settings

DEFAULT_SESSIONS = 200
WARMUP_SESSIONS = 10
CLIP_S = 0.2
WORKER_FIELDS = ("capacity", "prewarm_s", "backend", "models")


@dataclass(frozen=True)
class Sample:
    total_ms: float  # request start → ASSIGNED
    api_ms: float  # request start → 201 received
    queue_to_claim_ms: float  # QUEUED → ASSIGNED (stored timestamps)


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
    }


def _state_at(session: SessionInfo, state: str) -> float | None:
    for change in session.history:
        if change["state"] == state:
            return float(change["at"])
    return None


def one_session(
    farm: AvatarSession, avatar_id: str, audio: bytes, *, until_ended: bool, deadline_s: float = 30.0
) -> Sample:
    """Post one session, wait until a worker claimed it (and, with ``until_ended``, until it ended)."""
    t0 = time.time()
    created = farm.create_session(audio=audio, avatar_id=avatar_id)
    t_api = time.time()
    claimed = farm.wait_session(
        created.session_id,
        until={"ASSIGNED", "STARTING", "STREAMING", "ENDING", "ENDED", "FAILED"},
        deadline_s=deadline_s,
        poll_s=0.005,
    )
    queued, assigned = _state_at(claimed, "QUEUED"), _state_at(claimed, "ASSIGNED")
    if queued is None or assigned is None:
        raise RuntimeError(f"session {created.session_id} was never claimed: {claimed.status}")
    if until_ended:
        farm.wait_session(created.session_id, deadline_s=deadline_s, poll_s=0.01)
    return Sample((assigned - t0) * 1000, (t_api - t0) * 1000, (assigned - queued) * 1000)


def run(
    farm: AvatarSession, avatar_id: str, sessions: int, *, pace: str = "idle", warmup: int = WARMUP_SESSIONS
) -> list[Sample]:
    audio = sample_clip()
    until_ended = pace == "idle"
    for _ in range(warmup):
        one_session(farm, avatar_id, audio, until_ended=True)
    samples = []
    for i in range(sessions):
        samples.append(one_session(farm, avatar_id, audio, until_ended=until_ended))
        if (i + 1) % 50 == 0:
            emit({"bench": "dispatch", "progress": i + 1, "of": sessions})
    return samples


@contextlib.contextmanager
def _own_farm(args: argparse.Namespace) -> Iterator[tuple[AvatarSession, str]]:
    """A private farm in a temporary directory: a client with a fresh key and a READY sample agent
    id; every process stopped and the directory removed on exit."""
    from farm.infra.procs import LocalFarm, api_url
    from farm.infra.redis_conn import connect
    from farm.tenancy.api_keys import RedisKeyStore

    size = {"essence_size": args.size} if args.size else {}
    with tempfile.TemporaryDirectory(prefix="farm-bench-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        settings = Settings.from_env(
            redis_url=None,
            data_dir=root / "var",
            output_dir=root / "out",
            api_port=free_port(),
            hot_avatars=4,
            **size,
        )
        local = LocalFarm(settings, dict(os.environ))
        stack.callback(local.stop)
        url = local.start_redis()
        local.start_api()
        local.start_worker("essence", concurrency=args.worker_concurrency)
        local.start_worker("build", concurrency=1)
        local.wait_api(deadline_s=120)
        _, secret = RedisKeyStore(connect(url)).create("bench", "dispatch")
        farm = stack.enter_context(
            contextlib.closing(AvatarSession(api_url=api_url(settings), api_secret=secret, max_retries=0))
        )
        agent = farm.wait_agent(farm.create_agent(sample_portrait_png()).agent_id, deadline_s=600)
        if agent.status != "ready":
            raise RuntimeError(f"sample avatar build failed: {agent.raw}")
        _wait_ready_worker(farm, "essence")
        yield farm, agent.agent_id


def _wait_ready_worker(farm: AvatarSession, queue: str, deadline_s: float = 120.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if farm.fleet()["queues"].get(queue, {}).get("ready", 0) > 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"no READY worker on {queue}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench dispatch", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=DEFAULT_SESSIONS)
    parser.add_argument("--api-url", help="use a running farm (with --api-secret and --avatar-id)")
    parser.add_argument("--api-secret")
    parser.add_argument("--avatar-id", help="a READY agent of the key's tenant")
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--pace", choices=["idle", "claimed"], default="idle", help="see the module doc")
    parser.add_argument("--warmup-sessions", type=int, default=WARMUP_SESSIONS, help="not counted")
    parser.add_argument("--size", type=int, help="own farm: the sample avatar's frame size")
    parser.add_argument("--out", type=Path, help="also write the summary JSON here")
    smoke = {"sessions": 2, "warmup_sessions": 1, "worker_concurrency": 1, "size": 128}
    args = parse_args(parser, argv, smoke=smoke)
    if args.sessions < 1 or args.warmup_sessions < 0:
        parser.error("--sessions must be positive, --warmup-sessions not negative")

    with contextlib.ExitStack() as stack:
        if args.api_url:
            if not (args.api_secret and args.avatar_id):
                parser.error("--api-url needs --api-secret and --avatar-id")
            farm = stack.enter_context(
                contextlib.closing(
                    AvatarSession(api_url=args.api_url, api_secret=args.api_secret, max_retries=0)
                )
            )
            avatar_id = args.avatar_id
        else:
            emit({"bench": "dispatch", "phase": "starting a private farm and building the sample avatar"})
            farm, avatar_id = stack.enter_context(_own_farm(args))
        fleet = farm.fleet()["queues"].get("essence", {})
        started = time.monotonic()
        samples = run(farm, avatar_id, args.sessions, pace=args.pace, warmup=args.warmup_sessions)
        summary: dict[str, Any] = {
            "bench": "dispatch",
            "sessions": len(samples),
            "warmup_sessions": args.warmup_sessions,
            "pace": args.pace,
            "clip_s": CLIP_S,
            "request_to_claim": summarize([s.total_ms for s in samples]),
            "api_request": summarize([s.api_ms for s in samples]),
            "queued_to_assigned": summarize([s.queue_to_claim_ms for s in samples]),
            "wall_s": round(time.monotonic() - started, 2),
            "workers": [{k: w.get(k) for k in WORKER_FIELDS} for w in fleet.get("workers", [])],
        }
    finish(summary, args.out, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
