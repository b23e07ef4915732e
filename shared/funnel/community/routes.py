"""Community (DRM) API: the area's router, made of one router per concern: developers, organizations, accounts,
merges and suggestions (``routes_identity``), activities and their CSV imports (``routes_activities``), plugins,
their runs and webhooks (``routes_plugins``), shortlinks and their QR codes (``routes_shortlinks``),
one identity across the product: organizations' outreach, channels of campaigns, the first-touch funnel
(``routes_crossarea``)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

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


def _add_routes_of(concern: APIRouter) -> None:
    """The concern's routes as this router's own (under /v1). Not ``include_router``: FastAPI keeps an included
    router as one private nested entry, and the API document's problem responses (funnel.api.openapi) and the
    AREA_ROUTERS check read an area router's own APIRoutes."""
    for route in concern.routes:
        assert isinstance(route, APIRoute), f"{route!r}: a concern router holds path operations only"
        router.add_api_route(
            route.path, route.endpoint, response_model=route.response_model, status_code=route.status_code,
            tags=route.tags, dependencies=route.dependencies, summary=route.summary, description=route.description,
            response_description=route.response_description, responses=route.responses, deprecated=route.deprecated,
            methods=route.methods, operation_id=route.operation_id,
            response_model_include=route.response_model_include, response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none, include_in_schema=route.include_in_schema,
            response_class=route.response_class, name=route.name, callbacks=route.callbacks,
            openapi_extra=route.openapi_extra)


for _concern in (routes_identity, routes_activities, routes_plugins, routes_shortlinks, routes_campaigns,
                 routes_crossarea, routes_stats):
    _add_routes_of(_concern.router)
