"""The OpenAPI document: FastAPI's, completed with the errors every route of a kind can give.

A route declares the problems its own rules raise (``responses=problems(404)``). What follows from the
platform is added here, from what the route depends on, so no route can forget it:

- 401 on every route behind authentication (``funnel.api.context`` refuses missing or bad credentials);
- 403 on routes that need a role (``funnel.api.deps.require``);
- 422 on routes with parameters or a body (FastAPI's own 422 schema is replaced by the problem schema),
  400/413/415 on routes with a body (invalid JSON, too large, wrong content type);
- 409 and 422 on authenticated POSTs (``Idempotency-Key`` still in flight, or reused for another request);
- 503 on authenticated writes: while an operator moves the workspace to another database server, its database is
  read-only for a moment (docs/tenant-placement.md) and a write answers 503 with ``Retry-After``.

It also names the two ways to authenticate, so generated clients and /docs offer them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from funnel.api.context import is_public
from funnel.api.contract import FieldError, Problem, problem_response

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "an access token from POST /v1/auth/login"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
               "description": "an API key from POST /v1/api-keys"},
}
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def requires_role(dependant: Dependant) -> bool:
    """True when the route (or a dependency of it) is a ``require(role)`` check."""
    if getattr(dependant.call, "required_role", None):
        return True
    return any(requires_role(sub) for sub in dependant.dependencies)


def platform_errors(route: APIRoute, method: str, operation: dict[str, Any]) -> list[int]:
    statuses: list[int] = []
    authenticated = not is_public(route.path_format)
    if authenticated:
        statuses.append(401)
    if requires_role(route.dependant):
        statuses.append(403)
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.append(422)
    if operation.get("requestBody"):
        statuses += [400, 413, 415]
    if authenticated and method == "post":
        statuses += [409, 422]
    if authenticated and method in ("post", "put", "patch", "delete"):
        statuses.append(503)
    return sorted(set(statuses))


def _problem_schemas() -> dict[str, Any]:
    return {"FieldError": FieldError.model_json_schema(),
            "Problem": Problem.model_json_schema(ref_template="#/components/schemas/{model}")}


def build_document(app: FastAPI, routers: Sequence[APIRouter]) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    problem_schemas = _problem_schemas()
    problem_schemas["Problem"].pop("$defs", None)
    schemas.update(problem_schemas)
    components["securitySchemes"] = SECURITY_SCHEMES
    # The area routers' own routes: the app's route list nests included routers in private types.
    for route in (route for router in routers for route in router.routes):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in sorted(route.methods or ()):
            operation = document["paths"][route.path_format][method.lower()]
            responses = operation.setdefault("responses", {})
            for status in platform_errors(route, method.lower(), operation):
                key = str(status)
                if key not in responses or key == "422" and _is_fastapi_validation(responses[key]):
                    responses[key] = problem_response(status)
            if not is_public(route.path_format):
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
    return document


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    content = response.get("content", {})
    return "application/json" in content and "HTTPValidationError" in str(content)


def install(app: FastAPI, routers: Callable[[], Sequence[APIRouter]]) -> None:
    """Serve the completed document at ``app.openapi_url`` (built once, on first request, after
    ``routers()`` has loaded every area's router)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app, routers())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
