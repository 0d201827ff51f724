"""``GET /v1/operators/overview``: the fleet for operators (admin tenants only: ``FARM_ADMIN_TENANTS``).

Workers per pool with READY/draining, capacity used, queue depth, and TTFF and fps histograms of the
farm's latest finished sessions (``farm.api.operators``). Any other key gets 403 ADMIN_ONLY.
"""

from __future__ import annotations

from fastapi import APIRouter

from farm.api.deps import Caller, Services
from farm.api.operators import OperatorOverview, overview
from farm.api.schemas import ERROR_RESPONSES

router = APIRouter(tags=["operators"], responses=ERROR_RESPONSES)


@router.get("/v1/operators/overview", response_model=OperatorOverview)
def operators_overview(farm: Services, key: Caller) -> OperatorOverview:
    """Workers, queues and latency histograms of the whole farm (admin keys only)."""
    return overview(farm.settings, key, farm.store, farm.registry, farm.queue_depth)
