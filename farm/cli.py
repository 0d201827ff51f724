"""The ``farm`` command: up, api, worker, keys, agents, demo, bench.

This is an entrypoint: the only place (with the Celery worker entry) that reads the environment,
once, through ``Settings.from_env()``; everything below gets the Settings object.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from farm.errors import BackendUnavailable, FarmError
from farm.names import QUEUE_BUILD, QUEUE_ESSENCE, QUEUE_EXPRESSION
from farm.settings import Settings

log = logging.getLogger("farm")

QUEUE_CHOICES = (QUEUE_ESSENCE, QUEUE_EXPRESSION, QUEUE_BUILD)


class _Stop(Exception):
    """Raised by the SIGTERM handler so `farm up` unwinds like on Ctrl-C."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


# ---------------------------------------------------------------- up / api / worker
def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Embedded Redis (if needed), API, one worker per queue and Flower, until Ctrl-C or SIGTERM."""
    from farm.procs import LocalFarm, api_url, flower_url

    farm = LocalFarm(settings, dict(os.environ))
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        redis_url = farm.start_redis()
        farm.start_api()
        for queue in args.queues:
            farm.start_worker(queue)
        if not args.no_flower:
            farm.start_flower()
        farm.wait_api()
        print(f"farm up: redis  {redis_url}" + ("  (embedded)" if farm.redis else ""))
        print(f"         api    {api_url(settings)}   (docs: {api_url(settings)}/docs)")
        if not args.no_flower:
            print(f"         flower {flower_url(settings)}")
        print(f"         logs   {Path(settings.data_dir).resolve() / 'logs'}")
        print("Ctrl-C stops everything.", flush=True)
        while True:
            farm.check_alive()
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        print("\nstopping: children first, Redis last …", flush=True)
        return 0
    except FarmError as exc:
        print(f"farm up failed: {exc.message}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        farm.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def cmd_api(settings: Settings, _: argparse.Namespace) -> int:
    """Serve the HTTP API (uvicorn) against the configured Redis and Celery broker."""
    import uvicorn

    from farm.api.app import build_app

    settings = _with_redis(settings)
    uvicorn.run(build_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """A Celery worker on one queue: prewarms, registers READY, consumes; drains on SIGTERM."""
    from tasks.worker import start_worker

    start_worker(_with_redis(settings), [args.queue], concurrency=args.concurrency, pool=args.pool)
    return 0


def _with_redis(settings: Settings) -> Settings:
    from farm.procs import resolve_redis_url

    url = resolve_redis_url(settings)
    if url is None:
        raise BackendUnavailable("no Redis: set FARM_REDIS_URL, or start one with `farm up`")
    return settings.model_copy(update={"redis_url": url})


# ---------------------------------------------------------------- keys / agents
def _key_store(settings: Settings):  # type: ignore[no-untyped-def]  # KeyStore, built lazily
    from farm.redis_conn import connect
    from farm.sessions.keys import RedisKeyStore

    url = _with_redis(settings).redis_url
    assert url is not None
    return RedisKeyStore(connect(url))


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    keys = _key_store(settings)
    if args.keys_command == "create":
        key, secret = keys.create(args.tenant, args.name, args.concurrency_limit)
        print(f"key_id  {key.key_id}\ntenant  {key.tenant}\nsecret  {secret}")
        print("The secret is shown once; only its hash is stored.", file=sys.stderr)
    elif args.keys_command == "list":
        print(f"{'KEY_ID':<18} {'TENANT':<20} {'NAME':<20} {'CREATED':<20} STATUS")
        for key in keys.list():
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(key.created_at))
            status = "revoked" if key.revoked else "active"
            print(f"{key.key_id:<18} {key.tenant:<20} {key.name:<20} {created:<20} {status}")
    else:
        keys.revoke(args.key_id)
        print(f"revoked {args.key_id}")
    return 0


def cmd_agents(settings: Settings, args: argparse.Namespace) -> int:
    """Build an Essence pack from a portrait locally (no Redis, no worker), showing progress."""
    from farm.media import load_image_rgb
    from farm.render.essence import build_pack

    started = time.monotonic()

    def progress(stage: str, fraction: float) -> None:
        print(f"  {fraction:4.0%} {stage:<12} ({time.monotonic() - started:5.1f} s)", flush=True)

    image = load_image_rgb(Path(args.image), settings.max_image_pixels)
    print(f"building {args.out} from {args.image} …", flush=True)
    build_pack(image, Path(args.out), size=settings.essence_size, progress=progress)
    print(f"built {args.out} in {time.monotonic() - started:.1f} s")
    return 0


# ---------------------------------------------------------------- demo / bench
def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from farm.demo import run_demo

    return run_demo(settings, dict(os.environ), out=Path(args.out), model=args.model)


_BENCH_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def cmd_sim(_: Settings, args: argparse.Namespace) -> int:
    """A day at ``--peak`` concurrent sessions through old and new autoscaling; JSON (+ PNG)."""
    import json
    from pathlib import Path

    from farm.fleet import sim

    summary, traces = sim.run(peak=args.peak, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim.json").write_text(json.dumps(summary, indent=2) + "\n")
    try:
        sim.plot(traces, str(out / "sim.png"))
    except ImportError:
        print("farm sim: matplotlib not installed (pip install -e '.[dev]'): no plot", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_bench(_: Settings, args: argparse.Namespace) -> int:
    """Dispatch to ``farm.bench.<name>.main(argv)``; each prints JSON lines."""
    if not _BENCH_NAME.match(args.name):
        print(f"bad benchmark name {args.name!r}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"farm.bench.{args.name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"farm.bench.{args.name}":
            raise
        print(f"no benchmark named {args.name!r} (farm/bench/{args.name}.py)", file=sys.stderr)
        return 2
    result = module.main(list(args.bench_args))
    return int(result or 0)


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="farm", description="Render farm for real-time talking avatars.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run Redis (embedded if needed), API, workers and Flower")
    up.add_argument("--queues", nargs="+", default=list(QUEUE_CHOICES), choices=QUEUE_CHOICES)
    up.add_argument("--no-flower", action="store_true", help="do not start Flower")
    up.set_defaults(func=cmd_up)

    sub.add_parser("api", help="serve the HTTP API").set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="run a Celery worker on one queue")
    worker.add_argument("--queue", required=True, choices=QUEUE_CHOICES)
    worker.add_argument("--concurrency", type=int, default=None, help="default: settings.worker_capacity")
    worker.add_argument("--pool", default=None, help="Celery pool (prefork, threads, solo)")
    worker.set_defaults(func=cmd_worker)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints its secret once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="default")
    create.add_argument("--concurrency-limit", type=int, default=None)
    keys_sub.add_parser("list", help="list keys (never secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)

    agents = sub.add_parser("agents", help="avatar packs")
    agents_sub = agents.add_subparsers(dest="agents_command", required=True)
    build = agents_sub.add_parser("build", help="build an Essence pack from a portrait, locally")
    build.add_argument("--image", required=True, type=Path)
    build.add_argument("--out", required=True, type=Path)
    agents.set_defaults(func=cmd_agents)

    demo = sub.add_parser("demo", help="build the sample avatar, speak a clip, write out/demo.mp4")
    demo.add_argument("--out", default="out/demo.mp4")
    demo.add_argument("--model", default="essence", choices=[QUEUE_ESSENCE, QUEUE_EXPRESSION])
    demo.set_defaults(func=cmd_demo)

    simulate = sub.add_parser("sim", help="replay a diurnal day through old vs new autoscaling")
    simulate.add_argument("--peak", type=int, default=10_000, help="peak concurrent sessions")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--out", default="benchmarks/results", help="where sim.json and sim.png go")
    simulate.set_defaults(func=cmd_sim)

    bench = sub.add_parser("bench", help="run farm/bench/<name>.py (prints JSON)")
    bench.add_argument("name")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll is noise
    settings = Settings.from_env()
    if settings.log_format != "text":  # FARM_LOG_FORMAT=json: one object per line, structured fields kept
        from farm.observability.logs import configure

        configure(settings.log_format, logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(settings, args))
    except FarmError as exc:
        print(f"farm {args.command}: {exc.code}: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
