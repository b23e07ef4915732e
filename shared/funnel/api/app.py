"""The HTTP API: one FastAPI app, routers contributed by each product area.

An area's routes module (its router, models and services, with what they import) is loaded on the
first request under one of the first path segments the area owns (``/v1/<segment>/...``), so a cold
start pays for the area it serves, not for all of them. A path no area names loads every area (a new
segment someone forgot to list still works, it only loads more), and so does ``/openapi.json``.
Under SnapStart every area is loaded before the snapshot is taken.
"""
from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from funnel.api import openapi, problems
from funnel.api.context import RequestContextMiddleware
from funnel.api.contract import Health
from funnel.api.deps import no_nul_in_parameters
from funnel.platform.errors import FunnelError

# Each area exposes ``router`` (a fastapi.APIRouter with prefix /v1) in its routes module, and lists the
# first path segments after /v1/ its routes use (tests/unit/platform/test_api_areas.py keeps this true).
AREA_ROUTERS: dict[str, tuple[str, ...]] = {
    "funnel.platform.routes": ("api-keys", "audit-logs", "auth", "export", "llm", "me", "prompts", "runs",
                               "settings", "signup", "users", "workspace"),
    "funnel.notifications.routes": ("admin", "notification-channels", "notifications"),
    "funnel.content.routes": ("articles", "clusters", "images", "products", "runs", "schedules", "sites"),
    "funnel.outreach.routes": ("contacts", "do-not-contact", "tasks", "templates"),
    "funnel.email.routes": ("email-campaigns", "smtp-profiles", "webhooks"),
    "funnel.billing.routes": ("billing", "usage", "webhooks"),
    "funnel.community.routes": ("accounts", "activities", "activity-imports", "adoption", "campaigns", "developers",
                                "funnel", "merge-suggestions", "merges", "organizations", "plugins", "resources",
                                "segments", "shortlinks", "stats", "webhooks"),
}


class AreaRouters:
    """Includes each area's router into ``app`` once, on demand, keeping AREA_ROUTERS' order."""

    def __init__(self, app: FastAPI, areas: dict[str, tuple[str, ...]]) -> None:
        self.app = app
        self.areas = list(areas)
        self.by_segment: dict[str, list[str]] = {}
        for module_name, segments in areas.items():
            for segment in segments:
                self.by_segment.setdefault(segment, []).append(module_name)
        self.routers: dict[str, APIRouter] = {}
        self.all_loaded = False
        self._entries: dict[str, BaseRoute] = {}
        self._lock = threading.Lock()

    def for_path(self, path: str) -> list[str]:
        """The areas a request for ``path`` needs (none outside /v1, all for an unknown segment)."""
        if path == "/openapi.json":
            return self.areas
        if not path.startswith("/v1/"):
            return []
        segment = path[len("/v1/"):].split("/", 1)[0]
        return self.by_segment.get(segment, self.areas)

    def load(self, module_names: Iterable[str]) -> None:
        missing = [name for name in module_names if name not in self.routers]
        if not missing:
            return
        with self._lock:
            missing = [name for name in missing if name not in self.routers]
            for name in missing:
                router = importlib.import_module(name).router
                self.app.include_router(router)
                self._entries[name] = self.app.router.routes[-1]
                self.routers[name] = router
            # Included routers in AREA_ROUTERS order, whatever order they were loaded in, so that which
            # route wins a path never depends on which request came first. A new list: a request being
            # routed in another thread keeps iterating the old one.
            entries = [self._entries[name] for name in self.areas if name in self._entries]
            included = set(map(id, entries))
            others = [route for route in self.app.router.routes if id(route) not in included]
            self.app.router.routes = others + entries
            self.app.router._mark_routes_changed()
            self.all_loaded = len(self.routers) == len(self.areas)

    def load_all(self) -> list[APIRouter]:
        self.load(self.areas)
        return [self.routers[name] for name in self.areas]


class LoadAreasMiddleware:
    def __init__(self, app: ASGIApp, areas: AreaRouters) -> None:
        self.app, self.areas = app, areas

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.areas.all_loaded:  # nothing left to do once all are in
            self.areas.load(self.areas.for_path(scope["path"]))
        await self.app(scope, receive, send)


def _before_snapshot(load_all: Callable[[], object]) -> None:
    """Under Lambda SnapStart (its runtime ships snapshot_restore_py), load every area before the snapshot."""
    try:
        from snapshot_restore_py import register_before_snapshot
    except ImportError:
        return
    register_before_snapshot(load_all)


def create_app() -> FastAPI:
    app = FastAPI(title="Funnel API", version="1.0.0", openapi_url="/openapi.json", docs_url="/docs",
                  redoc_url=None, dependencies=[Depends(no_nul_in_parameters)],
                  description="Multi-tenant growth automation backend. Errors are application/problem+json; "
                              "lists use cursor pagination; POSTs honour Idempotency-Key.")
    app.add_exception_handler(FunnelError, problems.funnel_error_handler)
    app.add_exception_handler(RequestValidationError, problems.validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, problems.http_error_handler)
    app.add_exception_handler(problems.ForeignKeyViolation, problems.foreign_key_violation_handler)
    app.add_exception_handler(problems.ReadOnlySqlTransaction, problems.read_only_workspace_handler)
    for refused in (problems.NotNullViolation, problems.CheckViolation, problems.DataError):
        app.add_exception_handler(refused, problems.refused_value_handler)
    app.add_exception_handler(Exception, problems.unhandled_error_handler)
    app.add_middleware(RequestContextMiddleware)
    areas = AreaRouters(app, AREA_ROUTERS)
    app.add_middleware(LoadAreasMiddleware, areas=areas)  # outermost: routes exist before anything runs
    app.state.areas = areas

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Health:
        return Health(status="ok")

    openapi.install(app, areas.load_all)
    _before_snapshot(areas.load_all)
    return app
