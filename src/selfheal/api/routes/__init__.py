"""One router per resource, collected in ``api_router``."""

from __future__ import annotations

from fastapi import APIRouter

from selfheal.api.routes import (
    actions,
    catalog,
    charts,
    controls,
    events,
    fleet,
    history,
    incidents,
    keys,
    learning,
    outbound,
    services,
    system,
    tenant,
)

api_router = APIRouter()
api_router.include_router(system.router)
api_router.include_router(history.router)
api_router.include_router(services.router)
api_router.include_router(incidents.router)
api_router.include_router(catalog.router)
api_router.include_router(events.router)
api_router.include_router(controls.router)
api_router.include_router(fleet.router)
api_router.include_router(actions.router)
api_router.include_router(charts.router)
api_router.include_router(learning.router)
api_router.include_router(outbound.router)
api_router.include_router(keys.router)
api_router.include_router(tenant.router)

__all__ = ["api_router"]
