"""API pods stay small and GPU-free at run time, not only in the static import graph.

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
