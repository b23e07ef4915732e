"""Community (DRM) API: the area's router, made of one router per concern: developers, organizations, accounts,
merges and suggestions (``routes_identity``), activities and their CSV imports (``routes_activities``), plugins,
their runs and webhooks (``routes_plugins``), shortlinks and their QR codes (``routes_shortlinks``),
one identity across the product: organizations' outreach, channels of campaigns, the first-touch funnel
(``routes_crossarea``)."""
from __future__ import annotations

from fastapi import APIRouter

from funnel.api.routing import add_concern_routes
from funnel.community import (
    routes_activities,
    routes_campaigns,
    routes_crossarea,
    routes_identity,
    routes_plugins,
    routes_shortlinks,
    routes_stats,
)

router = APIRouter(prefix="/v1")


for _concern in (routes_identity, routes_activities, routes_plugins, routes_shortlinks, routes_campaigns,
                 routes_crossarea, routes_stats):
    add_concern_routes(router, _concern.router)
