"""Entrypoint for ``celery -A tasks.celery_entry worker|flower|inspect ...``.

The one module of the Celery layer that reads the environment (``FARM_*`` via Settings.from_env).
Example: ``FARM_REDIS_URL=redis://127.0.0.1:6379/0 celery -A tasks.celery_entry worker -Q essence
--pool threads --concurrency 4 --disable-prefetch``.
"""

from __future__ import annotations

from farm.kernel.settings import Settings
from tasks.worker import create_worker_app

settings = Settings.from_env()
app = create_worker_app(settings)
