"""``GET /v1/models``: what this farm serves, by public model name, and how.

Read from the model table (``farm.kernel.models``: settings only, no engine is imported here) and
the worker registry (what the READY workers of each pool actually run: backend, capacity, free
slots). A name is ``served`` when its engine is configured; ``workers`` says whether a READY worker
runs it right now (a served name with no worker answers session starts with 503 NO_CAPACITY).
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from farm.api.deps import Caller, Services
from farm.api.schemas import ERROR_RESPONSES
from farm.kernel.contracts import WorkerInfo
from farm.kernel.domain import ModelKind
from farm.kernel.models import ModelEntry, model_table
from farm.kernel.settings import Settings

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)


class ModelView(BaseModel):
    name: str = Field(description="The public name a request sends as `model`.")
    engine: str = Field(description="The engine that renders it (essence, expression, expression-2).")
    pool: str = Field(
        description="The worker pool (queue) that runs the engine: essence (CPU), expression (GPU)."
    )
    served: bool = Field(description="False: named in the table, but its engine is not configured here.")
    reason: str | None = Field(None, description="Why it is not served.")
    frame_size: int = Field(description="Output frames: the longer side in pixels.")
    fps: int
    workers: int = Field(description="READY workers running the engine now.")
    backends: list[str] = Field(description="Execution backends those workers report.")
    capacity_per_worker: int | None = Field(None, description="Session slots of one such worker (largest).")
    free_slots: int = Field(description="Sessions those workers would take now (measured cost included).")


class ModelsView(BaseModel):
    models: list[ModelView]


def _view(entry: ModelEntry, settings: Settings, workers: list[WorkerInfo]) -> ModelView:
    running = [w for w in workers if w.state == "READY" and entry.engine in w.models]
    size = settings.essence_size if entry.queue is ModelKind.ESSENCE else settings.expression_size
    return ModelView(
        name=entry.name,
        engine=entry.engine,
        pool=entry.queue.value,
        served=entry.served,
        reason=entry.reason,
        frame_size=size,
        fps=settings.fps,
        workers=len(running),
        backends=sorted({w.backend for w in running if w.backend}),
        capacity_per_worker=max((w.capacity for w in running), default=None),
        free_slots=sum(w.free_slots for w in running),
    )


@router.get("/v1/models", response_model=ModelsView)
async def list_models(farm: Services, key: Caller) -> ModelsView:
    """Every model name this farm knows, whether it serves it, and what runs it now."""
    workers = await run_in_threadpool(farm.registry.list)
    table = model_table(farm.settings)
    return ModelsView(models=[_view(entry, farm.settings, workers) for entry in table.values()])
