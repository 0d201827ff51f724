"""Walking an app's routes. FastAPI keeps each included router as one entry of ``app.routes``
(an ``_IncludedRouter`` holding ``original_router``), so a flat view has to look inside."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from starlette.routing import BaseRoute, Route


def flat_routes(routes: Iterable[BaseRoute]) -> Iterator[Route]:
    """Every plain route (FastAPI's APIRoute included), also those inside included routers."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from flat_routes(included.routes)
        elif isinstance(route, Route):
            yield route
