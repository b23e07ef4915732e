"""Community (DRM) API: the area's router, made of one router per concern: developers, organizations, accounts,
merges and suggestions (``routes_identity``), activities and their CSV imports (``routes_activities``), plugins,
their runs and webhooks (``routes_plugins``)."""
from __future__ import annotations

from fastapi import APIRouter

from funnel.community import routes_activities, routes_identity, routes_plugins

router = APIRouter(prefix="/v1")
for _concern in (routes_identity, routes_activities, routes_plugins):
    router.include_router(_concern.router)
