"""The one place that maps an engine name to its class. Engine modules are imported lazily, here
only, so a process that never renders (the API) never imports torch or the engines.

Engine names are those of ``farm.kernel.models.ENGINE_QUEUES``; which public model names reach
which engine is the model table's business (``Settings.models``), not this module's.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from farm.kernel.settings import Settings
from farm.render.base import RenderEngine

ENGINES: dict[str, str] = {
    "essence": "farm.render.essence:EssenceEngine",
    "expression": "farm.render.expression:ExpressionEngine",
    "expression-2": "farm.render.learned:LearnedExpressionEngine",
}


def engine_class(engine: str) -> Any:
    """Import and return the class of ``engine`` (ImportError if its package is missing)."""
    module_name, _, attr = ENGINES[str(engine)].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def create_engine(engine: str, settings: Settings) -> RenderEngine:
    """A new, not yet prewarmed engine ``engine`` configured from ``settings``.

    An engine takes its configuration through ``from_settings(settings)`` when it defines it, else
    through a ``settings`` constructor argument when it has one, else it needs none.
    """
    cls = engine_class(engine)
    factory = getattr(cls, "from_settings", None)
    if callable(factory):
        built: RenderEngine = factory(settings)
    elif "settings" in inspect.signature(cls).parameters:
        built = cls(settings=settings)
    else:
        built = cls()
    return built
