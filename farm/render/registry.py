"""The one place that maps a model to its engine. Engine modules are imported lazily, here only,
so a process that never renders (the API) never imports torch or the engines.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from farm.kernel.domain import ModelKind
from farm.kernel.settings import Settings
from farm.render.base import RenderEngine

ENGINES: dict[ModelKind, str] = {
    ModelKind.ESSENCE: "farm.render.essence:EssenceEngine",
    ModelKind.EXPRESSION: "farm.render.expression:ExpressionEngine",
}


def engine_class(model: ModelKind) -> Any:
    """Import and return the engine class of ``model`` (ImportError if its package is missing)."""
    module_name, _, attr = ENGINES[model].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def create_engine(model: ModelKind, settings: Settings) -> RenderEngine:
    """A new, not yet prewarmed engine for ``model`` configured from ``settings``.

    An engine takes its configuration through ``from_settings(settings)`` when it defines it, else
    through a ``settings`` constructor argument when it has one, else it needs none.
    """
    cls = engine_class(model)
    factory = getattr(cls, "from_settings", None)
    if callable(factory):
        engine: RenderEngine = factory(settings)
    elif "settings" in inspect.signature(cls).parameters:
        engine = cls(settings=settings)
    else:
        engine = cls()
    return engine
