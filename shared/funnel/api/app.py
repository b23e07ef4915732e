"""The HTTP API: one FastAPI app, routers contributed by each product area."""
from __future__ import annotations

import importlib

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from funnel.api import openapi, problems
from funnel.api.context import RequestContextMiddleware
from funnel.platform.errors import FunnelError

# Each area exposes ``router`` (a fastapi.APIRouter) in its routes module.
AREA_ROUTERS = [
    "funnel.platform.routes",
    "funnel.notifications.routes",
    "funnel.content.routes",
    "funnel.outreach.routes",
    "funnel.email.routes",
]


def create_app() -> FastAPI:
    app = FastAPI(title="Funnel API", version="1.0.0", openapi_url="/openapi.json", docs_url="/docs",
                  redoc_url=None,
                  description="Multi-tenant growth automation backend. Errors are application/problem+json; "
                              "lists use cursor pagination; POSTs honour Idempotency-Key.")
    app.add_exception_handler(FunnelError, problems.funnel_error_handler)
    app.add_exception_handler(RequestValidationError, problems.validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, problems.http_error_handler)
    app.add_exception_handler(Exception, problems.unhandled_error_handler)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    routers = [importlib.import_module(module_name).router for module_name in AREA_ROUTERS]
    for router in routers:
        app.include_router(router)
    openapi.install(app, routers)
    return app
