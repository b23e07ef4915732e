"""Composing an area's router from its concerns' routers (one module of routes per concern)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute


def add_concern_routes(area: APIRouter, concern: APIRouter) -> None:
    """A concern's routes (one module of an area's routes) as the area router's own. Not ``include_router``:
    FastAPI keeps an included router as one private nested entry, and the API document's problem responses
    (funnel.api.openapi) and the AREA_ROUTERS check read an area router's own APIRoutes."""
    for route in concern.routes:
        assert isinstance(route, APIRoute), f"{route!r}: a concern router holds path operations only"
        area.add_api_route(
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
