"""Celery entrypoint for integration tests: the real worker app with the ToneEngine in place of models.

Test-only knobs come from the environment of the worker subprocess (this is an entrypoint):
``FARM_TEST_FRAME_DELAY_S`` slows rendering so a test can kill a worker mid-session;
``FARM_TEST_PREWARM_ERROR`` makes prewarm fail; ``FARM_TEST_PREWARM_DELAY_S`` makes it slow.
"""

from __future__ import annotations

import os

from farm.kernel.domain import ModelKind
from farm.kernel.settings import Settings
from farm.render.base import RenderEngine
from tasks.worker import create_worker_app
from tests.support.tone_engine import ToneEngine

_DELAY_S = float(os.environ.get("FARM_TEST_FRAME_DELAY_S", "0"))
_PREWARM_ERROR = os.environ.get("FARM_TEST_PREWARM_ERROR") or None
_PREWARM_DELAY_S = float(os.environ.get("FARM_TEST_PREWARM_DELAY_S", "0"))


def _engine(model: ModelKind) -> RenderEngine:
    return ToneEngine(
        name=str(model),
        frame_delay_s=_DELAY_S,
        prewarm_error=_PREWARM_ERROR,
        prewarm_delay_s=_PREWARM_DELAY_S,
    )


settings = Settings.from_env()
app = create_worker_app(settings, engine_factory=_engine)
