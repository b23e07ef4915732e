"""The API loads an area's routes on the first request under a path segment the area lists in
``funnel.api.app.AREA_ROUTERS``: the list must name exactly the segments each area's routes use."""
from __future__ import annotations

import importlib

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from funnel.api.app import AREA_ROUTERS, create_app


def first_segment(path: str) -> str:
    assert path.startswith("/v1/"), path
    return path[len("/v1/"):].split("/", 1)[0]


def test_each_area_lists_exactly_the_segments_of_its_routes():
    for module_name, segments in AREA_ROUTERS.items():
        router = importlib.import_module(module_name).router
        used = {first_segment(route.path) for route in router.routes if isinstance(route, APIRoute)}
        assert "{" not in "".join(used), f"{module_name}: a route's first segment is a parameter"
        assert used == set(segments), f"{module_name}: routes use {sorted(used)}, AREA_ROUTERS lists {sorted(segments)}"


def test_areas_load_on_first_use_and_keep_their_order():
    app = create_app()
    areas = app.state.areas
    assert areas.routers == {}
    client = TestClient(app)
    assert client.get("/healthz").status_code == 200
    assert areas.routers == {}
    client.get("/v1/email-campaigns")
    assert list(areas.routers) == ["funnel.email.routes"]
    client.get("/v1/runs/00000000-0000-0000-0000-000000000000")  # platform and content both own /v1/runs
    assert set(areas.routers) == {"funnel.email.routes", "funnel.platform.routes", "funnel.content.routes"}
    client.get("/v1/no-such-area")
    assert list(areas.routers) != [] and set(areas.routers) == set(AREA_ROUTERS)
    included = [route.original_router for route in app.router.routes if hasattr(route, "original_router")]
    assert included == [importlib.import_module(name).router for name in AREA_ROUTERS]


def test_the_openapi_document_has_every_area():
    document = TestClient(create_app()).get("/openapi.json").json()
    segments = {first_segment(path) for path in document["paths"]}
    assert segments == {segment for listed in AREA_ROUTERS.values() for segment in listed}
