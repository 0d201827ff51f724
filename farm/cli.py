"""The ``farm`` command: up, api, worker, keys, agents, models, demo, bench, train.

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
from typing import Any

from farm.kernel.errors import AgentNotReady, BackendUnavailable, FarmError, ValidationError
from farm.kernel.names import QUEUE_BUILD, QUEUE_ESSENCE, QUEUE_EXPRESSION
from farm.kernel.settings import Settings

log = logging.getLogger("farm")

QUEUE_CHOICES = (QUEUE_ESSENCE, QUEUE_EXPRESSION, QUEUE_BUILD)


class _Stop(Exception):
    """Raised by the SIGTERM handler so `farm up` unwinds like on Ctrl-C."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


# ---------------------------------------------------------------- up / api / worker
def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Embedded Redis (if needed), API, one worker per queue and Flower, until Ctrl-C or SIGTERM.

    Supervises them meanwhile (``LocalFarm.supervise``): a crashed child is restarted with backoff,
    a dead embedded Redis comes back on the same port and data; a child that keeps crashing right
    after its start stops everything with its log's tail."""
    from farm.infra.procs import LocalFarm, api_url, flower_url

    farm = LocalFarm(settings, dict(os.environ), notify=lambda line: print(f"farm up: {line}", flush=True))
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
        while True:  # only Ctrl-C / SIGTERM, or a child that keeps crashing, ends this
            farm.supervise()
            time.sleep(0.25)
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
    from farm.api.server import uvicorn_config

    settings = _with_redis(settings)
    uvicorn.Server(uvicorn_config(build_app(settings), settings)).run()
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """A Celery worker on one queue: prewarms, registers READY, consumes; drains on SIGTERM."""
    from tasks.worker import start_worker

    start_worker(_with_redis(settings), [args.queue], concurrency=args.concurrency, pool=args.pool)
    return 0


def _with_redis(settings: Settings) -> Settings:
    from farm.infra.procs import resolve_redis_url

    url = resolve_redis_url(settings)
    if url is None:
        raise BackendUnavailable("no Redis: set FARM_REDIS_URL, or start one with `farm up`")
    return settings.model_copy(update={"redis_url": url})


# ---------------------------------------------------------------- keys / agents
def _key_store(settings: Settings):  # type: ignore[no-untyped-def]  # KeyStore, built lazily
    from farm.infra.redis_conn import connect
    from farm.tenancy.api_keys import RedisKeyStore

    url = _with_redis(settings).redis_url
    assert url is not None
    return RedisKeyStore(connect(url))


def _metering(settings: Settings):  # type: ignore[no-untyped-def]  # Metering over Redis, built lazily
    from farm.infra.redis_conn import connect
    from farm.tenancy.metering import Metering, RedisLedger

    url = _with_redis(settings).redis_url
    assert url is not None
    return Metering(RedisLedger(connect(url)))


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    keys = _key_store(settings)
    if args.keys_command == "create":
        if args.plan is not None:
            _metering(settings).ledger.set_plan(args.tenant, args.plan)  # refuses an unknown plan first
        key, secret = keys.create(args.tenant, args.name, args.concurrency_limit)
        print(f"key_id  {key.key_id}\ntenant  {key.tenant}\nsecret  {secret}")
        if args.plan is not None:
            print(f"plan    {args.plan}")
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


def _print_usage(metering, tenant: str) -> None:  # type: ignore[no-untyped-def]
    from farm.kernel.domain import ModelKind

    u = metering.usage(tenant)
    unlimited = "unlimited"
    print(f"tenant   {tenant}\nplan     {u.plan.name}\nperiod   {u.period}")
    print(f"balance  {unlimited if u.balance is None else u.balance} (top-up {u.topup_credits})")
    for model in ModelKind:
        used = u.counters.get(f"units:{model.value}", 0)
        left = u.minutes_left(model)
        print(f"{model.value:<11} {used} min used, {unlimited if left is None else left} min left")


def cmd_tenants(settings: Settings, args: argparse.Namespace) -> int:
    """Plans and credits per tenant: list, show, set-plan, topup."""
    metering = _metering(settings)
    if args.tenants_command == "list":
        print(f"{'TENANT':<24} {'PLAN':<12} BALANCE")
        for tenant in metering.ledger.tenants():
            u = metering.usage(tenant)
            print(f"{tenant:<24} {u.plan.name:<12} {'unlimited' if u.balance is None else u.balance}")
    elif args.tenants_command == "plans":
        from farm.tenancy.plans import PLANS

        for plan in PLANS.values():
            credits = "unlimited" if plan.monthly_credits is None else plan.monthly_credits
            concurrent = plan.concurrent_sessions or "unlimited"
            print(f"{plan.name:<12} credits/month {credits!s:<10} concurrent {concurrent}")
    elif args.tenants_command == "set-plan":
        metering.ledger.set_plan(args.tenant, args.plan)
        _print_usage(metering, args.tenant)
    elif args.tenants_command == "topup":
        metering.ledger.add_topup(args.tenant, args.credits)
        _print_usage(metering, args.tenant)
    else:
        _print_usage(metering, args.tenant)
    return 0


def cmd_agents(settings: Settings, args: argparse.Namespace) -> int:
    """Build an Essence pack from a portrait locally (no Redis, no worker), showing progress."""
    from farm.infra.media import load_image_rgb
    from farm.render.essence import build_pack

    started = time.monotonic()

    def progress(stage: str, fraction: float) -> None:
        print(f"  {fraction:4.0%} {stage:<12} ({time.monotonic() - started:5.1f} s)", flush=True)

    image = load_image_rgb(Path(args.image), settings.max_image_pixels)
    options = _build_options(args)
    print(
        f"building {args.out} from {args.image} ({options.mode.value}, {options.framing.value}) …", flush=True
    )
    build_pack(image, Path(args.out), size=settings.essence_size, options=options, progress=progress)
    print(f"built {args.out} in {time.monotonic() - started:.1f} s")
    return 0


def cmd_sheet(settings: Settings, args: argparse.Namespace) -> int:
    """Write a contact sheet PNG of an agent's pack, a pack directory, or a portrait built on the fly."""
    import tempfile

    from farm.render.essence import LoadedAvatar, load_pack
    from farm.render.essence.sheet import write_sheet

    with tempfile.TemporaryDirectory(prefix="farm-sheet-") as tmp:
        pack_dir, title = _sheet_pack(settings, args, Path(tmp))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_sheet(LoadedAvatar(load_pack(pack_dir)), args.title or title, str(args.out))
    print(f"wrote {args.out}")
    return 0


def _sheet_pack(settings: Settings, args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    """(pack directory, title) for ``farm sheet``: an agent's (from Redis), ``--pack`` or ``--image``."""
    if args.pack is not None:
        return Path(args.pack), Path(args.pack).name
    if args.image is not None:
        from farm.infra.media import load_image_rgb
        from farm.render.essence import build_pack

        image = load_image_rgb(Path(args.image), settings.max_image_pixels)
        build_pack(image, tmp / "pack", size=settings.essence_size, options=_build_options(args))
        return tmp / "pack", Path(args.image).name
    if args.agent is None:
        raise ValidationError("name an agent, or give --pack DIR or --image FILE")
    from farm.infra.redis_conn import connect
    from farm.sessions.agents import RedisAgentStore
    from farm.worker.wiring import pack_path

    url = _with_redis(settings).redis_url
    assert url is not None
    agent = RedisAgentStore(connect(url)).get(args.agent)
    if agent.pack_ref is None:
        raise AgentNotReady(f"agent {agent.id} has no built pack ({agent.status.value})")
    return pack_path(settings, agent.pack_ref), f"agent {agent.id}"


def _numbers(text: str | None) -> list[float] | None:
    """ "x0,y0,x1,y1" or "x,y" -> floats (None stays None)."""
    return None if text is None else [float(v) for v in text.replace(" ", ",").split(",") if v]


def _build_options(args: argparse.Namespace):  # type: ignore[no-untyped-def]  # BuildOptions, imported lazily
    from farm.kernel.characters import BuildOptions

    fields: dict[str, object] = {"mode": args.mode, "framing": args.framing, "crop_scale": args.crop_scale}
    if args.mouth_box is not None:
        fields["mouth_box"] = _numbers(args.mouth_box)
    if args.mouth_point:
        fields["mouth_points"] = [_numbers(p) for p in args.mouth_point]
    if args.eye:
        fields["eyes"] = [_numbers(e) for e in args.eye]
    return BuildOptions.model_validate(fields)


# ---------------------------------------------------------------- demo / bench
def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from farm.devtools.demo import run_demo

    if args.room:
        from farm.devtools.room_demo import run_room_demo

        return run_room_demo(settings, dict(os.environ), duration_s=args.duration)
    return run_demo(settings, dict(os.environ), out=Path(args.out), model=args.model)


def cmd_livekit_server(_: Settings, args: argparse.Namespace) -> int:
    """Find (or build with Go into the cache) the livekit-server binary; print its path and version."""
    from farm.devtools.livekit_server import binary_version, ensure_binary

    binary = ensure_binary(
        os.environ.get("LIVEKIT_SERVER_BIN"), say=lambda line: print(line, file=sys.stderr)
    )
    print(f"{binary} ({binary_version(binary)})")
    return 0


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
    args.name = args.name.replace("-", "_")  # `farm bench audio-memory` is farm/bench/audio_memory.py
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
    if not callable(getattr(module, "main", None)):
        print(f"farm/bench/{args.name}.py is a helper of the benchmarks, not one", file=sys.stderr)
        return 2
    result = module.main(list(args.bench_args))
    return int(result or 0)


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    """``farm models check DIR`` / ``farm models pull ditto``: the learned Expression weights."""
    from farm.render.learned import commands

    if args.models_command == "check":
        return commands.models_check(args.directory)
    dest = args.dest or settings.data_dir / "weights" / args.model
    return commands.models_pull(args.model, args.revision, dest)


def _add_models_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="learned Expression weights (expression-2): check, pull")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    check = models_sub.add_parser("check", help="validate a weights directory against the graph signatures")
    check.add_argument("directory", type=Path)
    pull = models_sub.add_parser("pull", help="download a published graph set (huggingface_hub)")
    pull.add_argument("model", choices=["ditto"])
    pull.add_argument("--revision", default=None, help="hub revision (default: main)")
    pull.add_argument("--dest", type=Path, default=None, help="default: <data_dir>/weights/<model>")
    models.set_defaults(func=cmd_models)


def cmd_train(_: Settings, args: argparse.Namespace) -> int:
    """``farm train visemes``: train the viseme model on espeak-ng speech (torch, CPU); JSON lines."""
    import dataclasses
    import json

    from farm.render.speech.training.trainer import TrainConfig, train

    config = TrainConfig.smoke() if args.smoke else TrainConfig()
    chosen = {k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    config = dataclasses.replace(config, **{k: v for k, v in chosen.items() if v is not None})
    train(
        config,
        Path(args.out) if args.out else None,
        report=lambda record: print(json.dumps(record), flush=True),
        cache_dir=Path(args.cache) if args.cache else None,
    )
    return 0


def _add_train_parser(sub: Any) -> None:
    trainer = sub.add_parser("train", help="train a model the farm ships (CPU)")
    models = trainer.add_subparsers(dest="model", required=True)
    visemes = models.add_parser("visemes", help="the audio -> viseme model, on espeak-ng speech")
    visemes.add_argument("--out", default=None, help="weights file (default: the package's own)")
    visemes.add_argument("--seed", type=int, default=None)
    visemes.add_argument("--utterances", type=int, default=None, help="training sentences")
    visemes.add_argument("--epochs", type=int, default=None)
    visemes.add_argument("--workers", type=int, default=None, help="processes building the data")
    visemes.add_argument("--threads", type=int, default=None, help="torch threads")
    visemes.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, weights not useful")
    visemes.add_argument("--cache", default=None, help="keep the built training data here (reruns skip it)")
    trainer.set_defaults(func=cmd_train)


def _add_tenants_parser(sub: Any) -> None:
    tenants = sub.add_parser("tenants", help="plans and credits per tenant")
    tenants_sub = tenants.add_subparsers(dest="tenants_command", required=True)
    tenants_sub.add_parser("list", help="tenants with a plan or top-up, and their balance")
    tenants_sub.add_parser("plans", help="the plans")
    show = tenants_sub.add_parser("show", help="a tenant's plan, balance and use this month")
    show.add_argument("tenant")
    set_plan = tenants_sub.add_parser("set-plan", help="assign a plan")
    set_plan.add_argument("tenant")
    set_plan.add_argument("plan")
    topup = tenants_sub.add_parser("topup", help="add top-up credits (never expire)")
    topup.add_argument("tenant")
    topup.add_argument("credits", type=int)
    tenants.set_defaults(func=cmd_tenants)


def _add_build_options(parser: argparse.ArgumentParser) -> None:
    """The build options of ``agents build`` (and of ``sheet --image``)."""
    parser.add_argument(
        "--mode", choices=["person", "animal"], default="person", help="animal: give --mouth-box"
    )
    parser.add_argument(
        "--framing", choices=["face", "full"], default="face", help="full keeps the whole image"
    )
    parser.add_argument(
        "--crop-scale", type=float, default=3.6, help="face framing: crop side in face widths"
    )
    parser.add_argument("--mouth-box", metavar="X0,Y0,X1,Y1", help="animal mode: the mouth, image pixels")
    parser.add_argument(
        "--mouth-point", action="append", metavar="X,Y", help="animal mode: a mouth outline point"
    )
    parser.add_argument(
        "--eye", action="append", metavar="X,Y|X0,Y0,X1,Y1", help="animal mode: an eye (<= 2)"
    )


def _add_sheet_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sheet = sub.add_parser(
        "sheet", help="contact sheet PNG of an avatar: idle, each viseme's mouth, blink and gaze, gestures"
    )
    sheet.add_argument("agent", nargs="?", help="an agent id (its pack is found through Redis)")
    sheet.add_argument("--pack", type=Path, help="a pack directory instead of an agent")
    sheet.add_argument(
        "--image", type=Path, help="a portrait instead: built on the fly (build options below)"
    )
    sheet.add_argument("--out", type=Path, default=Path("out/sheet.png"))
    sheet.add_argument("--title", default=None, help="the sheet's heading (default: the agent, pack or file)")
    _add_build_options(sheet)
    sheet.set_defaults(func=cmd_sheet)


def _add_demo_and_tool_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``demo``, ``livekit-server``, ``sim`` and ``bench``."""
    demo = sub.add_parser("demo", help="build the sample avatar, speak a clip, write out/demo.mp4")
    demo.add_argument("--out", default="out/demo.mp4")
    demo.add_argument("--model", default="essence", choices=[QUEUE_ESSENCE, QUEUE_EXPRESSION])
    demo.add_argument(
        "--room",
        action="store_true",
        help="the live experience: real livekit-server, the farm, a voice agent with the real plugin",
    )
    demo.add_argument("--duration", type=float, default=120.0, help="--room: seconds to run (Ctrl-C stops)")
    demo.set_defaults(func=cmd_demo)

    lk = sub.add_parser("livekit-server", help="find or build (Go) a real livekit-server; print its path")
    lk.set_defaults(func=cmd_livekit_server)
    simulate = sub.add_parser("sim", help="replay a diurnal day through old vs new autoscaling")
    simulate.add_argument("--peak", type=int, default=10_000, help="peak concurrent sessions")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--out", default="benchmarks/results", help="where sim.json and sim.png go")
    simulate.set_defaults(func=cmd_sim)

    bench = sub.add_parser("bench", help="run farm/bench/<name>.py (prints JSON)")
    bench.add_argument("name")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)


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
    create.add_argument(
        "--plan", default=None, help="assign this plan to the tenant (see `farm tenants plans`)"
    )
    keys_sub.add_parser("list", help="list keys (never secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)

    _add_tenants_parser(sub)
    _add_models_parser(sub)

    agents = sub.add_parser("agents", help="avatar packs")
    agents_sub = agents.add_subparsers(dest="agents_command", required=True)
    build = agents_sub.add_parser("build", help="build an Essence pack from a portrait, locally")
    build.add_argument("--image", required=True, type=Path)
    build.add_argument("--out", required=True, type=Path)
    _add_build_options(build)
    agents.set_defaults(func=cmd_agents)
    _add_sheet_parser(sub)

    _add_demo_and_tool_commands(sub)
    _add_train_parser(sub)
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
        from farm.infra.logs import configure

        configure(settings.log_format, logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(settings, args))
    except FarmError as exc:
        print(f"farm {args.command}: {exc.code}: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
