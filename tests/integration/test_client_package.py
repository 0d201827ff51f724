"""``avatar-farm-client`` stands alone: its wheel, installed by itself in a fresh virtualenv, runs the
README's SDK snippets against a real farm.

The wheel is built from ``clients/python`` (offline: ``--no-index --no-build-isolation``) and
installed with ``pip --no-index`` from the wheelhouse ``make install`` filled with httpx, pydantic
and their dependencies (``.venv/client-wheelhouse``): no network at test time. The farm is the
production app under uvicorn, real Redis, real Celery workers (ToneEngine renders; the agent build
runs the real Essence pack builder) and espeak-ng speech; each video is measured with PyAV.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import av
import pytest
import redis
from PIL import Image

from farm.kernel import names
from farm.kernel.settings import Settings
from farm.render.landmarks import sample_portrait
from farm.tenancy.api_keys import RedisKeyStore
from tests.integration.api_support import live_api
from tests.integration.conftest import REPO_ROOT, StartWorker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

CLIENT_DIR = REPO_ROOT / "clients" / "python"
WHEELHOUSE = Path(sys.prefix) / "client-wheelhouse"
"""Filled by ``make install`` (pip wheel of clients/python: httpx, pydantic and what they need)."""
MAX_WHEEL_BYTES = 100_000
FPS = 25
ALLOWED = {
    *("avatar-farm-client", "httpx", "httpcore", "h11", "anyio", "idna", "certifi", "sniffio"),
    *("pydantic", "pydantic-core", "annotated-types", "typing-extensions", "typing-inspection"),
    *("pip", "setuptools"),
}


def _run(*cmd: str | Path, env: dict[str, str] | None = None, timeout_s: float = 120) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "client-src"
    shutil.copytree(CLIENT_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--wheel-dir", dist, source)  # fmt: skip
    (wheel,) = dist.glob("avatar_farm_client-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    assert WHEELHOUSE.is_dir(), f"no wheelhouse at {WHEELHOUSE}: run `make install` (it fills it)"
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", WHEELHOUSE, wheel)
    return python


def _video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_the_wheel_is_small_pure_python_and_installs_alone(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    print(f"\navatar-farm-client wheel: {wheel.name} {wheel.stat().st_size} bytes")
    assert wheel.name.endswith("-py3-none-any.whl")  # no compiled code of its own
    assert wheel.stat().st_size <= MAX_WHEEL_BYTES
    with zipfile.ZipFile(wheel) as zf:
        assert not [n for n in zf.namelist() if n.endswith((".so", ".pyd", ".c"))]
    python = _fresh_venv(tmp_path, wheel)
    frozen = _run(python, "-m", "pip", "list", "--format=json")
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(frozen)}
    assert installed <= ALLOWED, installed - ALLOWED
    assert "avatar-farm-client" in installed and "farm" not in installed


def test_the_readme_snippets_run_from_the_wheel_alone_against_a_real_farm(
    settings: Settings, redis_url: str, redis_client: redis.Redis, start_worker: StartWorker, tmp_path: Path
) -> None:
    python = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    farm_settings = settings.model_copy(update={"redis_url": redis_url})
    for queue in (names.QUEUE_BUILD, names.QUEUE_ESSENCE, names.QUEUE_EXPRESSION):
        start_worker(farm_settings, queue, concurrency=1)
    secret = RedisKeyStore(redis_client).create("tenant-client", "wheel")[1]
    portrait = tmp_path / "me.png"
    Image.fromarray(sample_portrait()).save(portrait)
    out = tmp_path / "videos"
    out.mkdir()
    with live_api(farm_settings) as api:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "FARM_API_URL": api.url,
            "FARM_API_SECRET": secret,
        }  # fmt: skip  (no PYTHONPATH: only the venv's packages)
        said = json.loads(_run(python, REPO_ROOT / "tests" / "support" / "client_snippets.py", portrait, out,
                               env=env, timeout_s=300).splitlines()[-1])  # fmt: skip

    for name, prompt in (("essence", "Hello, how are you?"), ("expression", "Tell me about yourself"),
                         ("image", "Nice to meet you."), ("async", "Async works too.")):  # fmt: skip
        text, duration_s, first_frame_s, total_s = said[name]
        assert text == prompt  # no answering model configured: spoken as given
        assert 0 < first_frame_s <= total_s
        assert abs(_video_frames(out / f"{name}.mp4") - duration_s * FPS) <= 2, name
    assert said["errors"] == ["auth 401", "network CONNECTION_ERROR"]
    assert (
        said["deprecated_alias_fleet"] == ["build", "essence", "expression"]
        or "essence" in said["deprecated_alias_fleet"]
    )
    assert said["alias_warned"] == ["DeprecationWarning"]
