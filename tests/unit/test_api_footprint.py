"""API pods stay small and GPU-free at run time, not only in the static import graph; workers load
scipy only when they build a pack.

import-linter checks direct imports; the Celery producer reaches worker code only through lazy,
worker-only imports. This test builds the production app in a fresh interpreter and looks at what
was actually loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PROBE = """
import json, sys
from farm.api.app import build_app
from farm.kernel.settings import Settings
build_app(Settings(redis_url="redis://127.0.0.1:1/0"))
heavy = ("torch", "onnxruntime", "farm.render", "farm.stream", "livekit.rtc", "ai_edge_litert", "cv2")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(heavy))))
"""


def test_building_the_api_app_loads_no_render_stream_or_torch_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == []


WORKER_PROBE = """
import json, sys
import tasks.worker
import farm.render.essence.builder, farm.render.essence.engine, farm.render.expression.engine
import farm.render.learned.renderer, farm.render.landmarks
from farm.render.audio import Resampler
Resampler(24_000).push(__import__("numpy").zeros(480, "float32"))
by_workers = sorted(m for m in sys.modules if m.split(".")[0] in ("scipy", "skimage"))
from farm.bench.common import sample_portrait_png
sample_portrait_png()  # reads the portrait's PNG in skimage.data (a lazy package: ~1 ms)
print(json.dumps(by_workers + sorted(m for m in sys.modules if m.split(".")[0] == "scipy")))
"""


def test_worker_modules_and_streaming_resampling_load_no_scipy_or_skimage() -> None:
    """scipy.signal alone (it pulls scipy.stats and scipy.interpolate) cost every worker, CLI and bench
    process ~0.75 s of CPU at import, skimage.io ~0.4 s; only a pack build or a whole-clip resample
    needs them now, and imports them then. A bench that only needs the sample portrait (every chaos
    farm start) does not import the speech synthesiser's filter either."""
    out = subprocess.run(
        [sys.executable, "-c", WORKER_PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == []
