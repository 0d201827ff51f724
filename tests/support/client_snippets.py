"""The README's SDK section, run by a Python that has only ``avatar-farm-client`` installed.

``python client_snippets.py PORTRAIT OUT_DIR`` with ``FARM_API_URL`` and ``FARM_API_SECRET`` set.
Writes the videos to OUT_DIR and prints one JSON object: what each snippet returned. Run by
tests/integration/test_client_package.py in a fresh virtualenv (the farm is not importable there).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

import avatar_farm_client as bithuman
from avatar_farm_client import AsyncAvatarSession, AuthenticationError, AvatarSession, NetworkError


def main() -> None:
    assert importlib.util.find_spec("farm") is None, "the farm must not be importable here"
    portrait, out = Path(sys.argv[1]), Path(sys.argv[2])
    secret = os.environ["FARM_API_SECRET"]
    said: dict[str, object] = {}

    # The raw API on the same client name: register the portrait, get an agent code.
    with AvatarSession(api_secret=secret) as farm:
        code = farm.wait_agent(farm.create_agent(portrait.read_bytes()).agent_id, deadline_s=180).agent_id

    # --- README: the Python SDK, with the import changed only
    avatar = AvatarSession(avatar_id=code, api_secret=secret)  # essence (default)
    response = avatar.generate_response("Hello, how are you?")
    response.download(out / "essence.mp4")
    said["essence"] = [response.text, response.duration_s, response.first_frame_s, response.total_s]

    avatar = AvatarSession(avatar_id=code, api_secret=secret, model="expression")
    response = avatar.generate_response("Tell me about yourself")
    response.download(out / "expression.mp4")
    said["expression"] = [response.text, response.duration_s, response.first_frame_s, response.total_s]

    avatar = AvatarSession(avatar_image=str(portrait), api_secret=secret, model="expression")  # a path works
    response = avatar.generate_response("Nice to meet you.")
    response.download(out / "image.mp4")
    said["image"] = [response.text, response.duration_s, response.first_frame_s, response.total_s]

    async def asynchronously() -> list[object]:
        async with AsyncAvatarSession(avatar_id=code, api_secret=secret) as avatar:
            response = await avatar.generate_response("Async works too.")
            await response.adownload(out / "async.mp4")
            return [response.text, response.duration_s, response.first_frame_s, response.total_s]

    said["async"] = asyncio.run(asynchronously())

    caught: list[str] = []
    for make in (
        lambda: bithuman.AvatarSession(avatar_id=code, api_secret="farm_wrong"),
        lambda: bithuman.AvatarSession(
            avatar_id=code, api_secret=secret, api_url="http://127.0.0.1:9", max_retries=1, backoff_s=0.01
        ),
    ):
        try:
            make().generate_response("Test message")
        except AuthenticationError as exc:
            caught.append(f"auth {exc.status}")
        except NetworkError as exc:
            caught.append(f"network {exc.code}")
    said["errors"] = caught

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        said["deprecated_alias_fleet"] = sorted(
            bithuman.AvatarFarm(os.environ["FARM_API_URL"], secret).fleet()["queues"]
        )
    said["alias_warned"] = [str(w.category.__name__) for w in seen]
    print(json.dumps(said))


if __name__ == "__main__":
    main()
