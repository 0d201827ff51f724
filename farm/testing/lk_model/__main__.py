"""``python -m farm.testing.lk_model --host 10.77.0.1 --port 7880``: run the model server until killed."""

from __future__ import annotations

import argparse
import asyncio
import logging

from farm.testing.lk_model import LiveKitModel


async def _run(host: str, port: int, key: str, secret: str, probe: bool) -> None:
    model = LiveKitModel(host, port, api_key=key, api_secret=secret, probe=probe)
    await model.start()
    print(f"LiveKit-protocol model listening on {model.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await model.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LiveKit-protocol model server (tests only)")
    parser.add_argument("--host", default="10.77.0.1")
    parser.add_argument("--port", type=int, default=7880)
    parser.add_argument("--api-key", default="devkey")
    parser.add_argument("--api-secret", default="secret")
    parser.add_argument("--probe", action="store_true", help="serve ingress timing at /debug/ingress")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_run(args.host, args.port, args.api_key, args.api_secret, args.probe))


if __name__ == "__main__":
    main()
