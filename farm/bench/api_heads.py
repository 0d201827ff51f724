"""``farm bench api_heads`` (or ``api-heads``): what hostile request heads cost the API process.

For each protocol — the farm's (``farm.api.server.BoundedHeadProtocol``, default limits from the
settings) and uvicorn's own httptools protocol, for comparison — a child process serves a trivial
ASGI app with it on loopback. The parent opens ``--connections`` connections, each sending a request
line and a header value ``--header-mb`` long that never ends, then reads what comes back. Reported
per protocol: the child's resident memory growth (VmRSS after minus before), what each connection
got back (a status, or ``open`` when the server still held it after ``--wait-s``). One JSON object;
``--out`` writes it.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from farm.bench.common import emit, finish, parse_args
from farm.infra.procs import free_port

PROTOCOLS = ("farm", "uvicorn-httptools")
_CHUNK = b"v" * 1_000_000


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _serve(protocol: str, port: int) -> None:
    """Child: serve ``_app`` with ``protocol`` until killed."""
    import uvicorn

    from farm.api.server import uvicorn_config
    from farm.kernel.settings import Settings

    settings = Settings.from_env(api_host="127.0.0.1", api_port=port)
    http = {} if protocol == "farm" else {"http": "httptools"}
    uvicorn.Server(uvicorn_config(_app, settings, log_level="error", **http)).run()


def _answer(sock: socket.socket, wait_s: float) -> str:
    """The status the server sent, ``closed`` without one, ``open`` if it still waits."""
    sock.settimeout(wait_s)
    try:
        reply = sock.recv(4096)
    except TimeoutError:
        return "open"
    except OSError:
        return "closed"
    return reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/") else "closed"


def measure(protocol: str, *, connections: int, header_mb: int, wait_s: float) -> dict[str, Any]:
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "farm.bench.api_heads", "--child", protocol, str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError(f"the {protocol} server did not start")
            time.sleep(0.05)
        time.sleep(0.2)
        before = _rss_mb(child.pid)
        socks = []
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            with contextlib.suppress(OSError):
                sock.sendall(b"GET / HTTP/1.1\r\nhost: farm\r\nx-big: ")
                for _ in range(header_mb):
                    sock.sendall(_CHUNK)
            socks.append(sock)
        time.sleep(0.5)
        grown = _rss_mb(child.pid) - before
        answers = Counter(_answer(sock, wait_s) for sock in socks)
        for sock in socks:
            sock.close()
        return {
            "protocol": protocol,
            "rss_before_mb": round(before, 1),
            "rss_growth_mb": round(grown, 1),
            "answers": dict(answers),
        }
    finally:
        child.kill()
        child.wait(10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench api_heads", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--header-mb", type=int, default=50, help="header bytes each connection sends")
    parser.add_argument("--wait-s", type=float, default=2.0, help="how long to wait for an answer")
    parser.add_argument("--child", nargs=2, metavar=("PROTOCOL", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="also write the summary JSON here")
    args = parse_args(parser, argv, smoke={"connections": 1, "header_mb": 1, "wait_s": 0.5})
    if args.child:
        _serve(args.child[0], int(args.child[1]))
        return 0
    results = []
    for protocol in PROTOCOLS:
        result = measure(protocol, connections=args.connections, header_mb=args.header_mb, wait_s=args.wait_s)
        emit({"bench": "api_heads", **result})
        results.append(result)
    summary = {"bench": "api_heads", "connections": args.connections, "header_mb": args.header_mb}
    finish({**summary, "results": results}, args.out, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
