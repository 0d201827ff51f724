"""Public model names → engines, as data: the one table the API, the workers and ``/v1/models`` read.

livekit-plugins-bithuman (1.8.9, 1.8.10) lets a caller pin ``model`` to ``essence``, ``expression``,
``essence-2`` or ``expression-2``, or leave it unset. The farm maps each public name to an engine
through ``Settings.models`` (``FARM_MODELS``, a JSON object); the default maps both Essence names to
the Essence engine (CPU, avatar packs), ``expression`` to the analytic Expression engine and
``expression-2`` to the learned one (``farm.render.learned``), which is served only where the
operator configured its weights (``FARM_EXPRESSION_WEIGHTS``). Each engine runs on one queue
(``ModelKind``): the CPU pool (``essence``) or the GPU pool (``expression``).

A name with no engine, or an engine this farm does not serve, is refused with 400 and a message that
lists the names it does serve (the plugin's documented behaviour); nothing is stored or queued.
This module is pure data and rules: it imports no engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from farm.kernel.domain import ModelKind
from farm.kernel.errors import ModelNotConfigured
from farm.kernel.settings import DEFAULT_MODELS, Settings

ENGINE_QUEUES: dict[str, ModelKind] = {
    "essence": ModelKind.ESSENCE,  # farm.render.essence:EssenceEngine
    "expression": ModelKind.EXPRESSION,  # farm.render.expression:ExpressionEngine (analytic)
    "expression-2": ModelKind.EXPRESSION,  # farm.render.learned:LearnedExpressionEngine
}
"""Every engine the farm has, and the queue (worker pool) that runs it."""

__all__ = ["DEFAULT_MODELS", "ENGINE_QUEUES", "ModelEntry", "model_table", "resolve_model"]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One public model name as this farm serves it."""

    name: str  # what the caller sent (e.g. "essence-2")
    engine: str  # which engine renders it (e.g. "essence")
    queue: ModelKind  # which worker pool runs that engine
    served: bool  # False: named in the table, but its engine is not configured here
    reason: str | None = None  # why it is not served


def engine_served(engine: str, settings: Settings) -> str | None:
    """None when this farm can run ``engine``; else why not."""
    if engine not in ENGINE_QUEUES:
        return f"unknown engine {engine!r}"
    if engine == "expression-2" and settings.expression_weights is None:
        return "no learned Expression weights are configured (FARM_EXPRESSION_WEIGHTS)"
    return None


def model_table(settings: Settings) -> dict[str, ModelEntry]:
    """Every public name of ``settings.models`` with its engine, queue and whether it is served."""
    table: dict[str, ModelEntry] = {}
    for name, engine in settings.models.items():
        reason = engine_served(engine, settings)
        queue = ENGINE_QUEUES.get(engine, ModelKind.ESSENCE)
        table[name] = ModelEntry(name, engine, queue, reason is None, reason)
    return table


def served_names(settings: Settings) -> list[str]:
    return [name for name, entry in model_table(settings).items() if entry.served]


def resolve_model(name: str, settings: Settings) -> ModelEntry:
    """The served entry of ``name``; ModelNotConfigured (400) naming what this farm serves otherwise."""
    entry = model_table(settings).get(name)
    served = ", ".join(served_names(settings)) or "none"
    if entry is None:
        raise ModelNotConfigured(
            f"model {name!r} is not served by this farm; it serves: {served}", model=name, served=served
        )
    if not entry.served:
        raise ModelNotConfigured(
            f"model {name!r} is not served by this farm ({entry.reason}); it serves: {served}",
            model=name,
            served=served,
        )
    return entry


def default_for(queue: ModelKind, settings: Settings) -> ModelEntry:
    """The entry a request that names no model gets on ``queue``: the queue's own name."""
    return resolve_model(queue.value, settings)


def engines_for_queues(queues: list[str], settings: Settings) -> list[str]:
    """The engines a worker consuming ``queues`` prewarms: those of the served names on its queues."""
    wanted = {q for q in queues}
    engines = {e.engine for e in model_table(settings).values() if e.served and e.queue.value in wanted}
    return sorted(engines, key=list(ENGINE_QUEUES).index)
