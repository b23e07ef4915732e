"""The OpenAPI document is a contract a frontend can generate a typed client from.

Contract tests live in ``tests/contract/`` (no runtime needed here: the document is ``create_app().openapi()``,
the one the API serves at /openapi.json). Every operation must say what it returns and how it fails:

- each 2xx ``application/json`` body is a schema with ``properties`` (directly or through its ``$ref``), never a
  free-form object or a bare list: a response model (``funnel.api.contract.Out``) or ``Page[Item]``;
- each 4xx/5xx is ``application/problem+json`` with the one ``Problem`` schema;
- each operation declares the platform's errors: 401 behind authentication, 422 where it has inputs.

The failure lists every operation that breaks a rule, so one run shows what is left to type.
"""
from __future__ import annotations

from typing import Any

import pytest

from funnel.api.contract import PROBLEM_MEDIA_TYPE, PROBLEM_SCHEMA_REF, Problem

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from funnel.api.app import create_app

    return create_app().openapi()


def operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", path, operation


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    seen = set()
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/components/schemas/") and ref not in seen, f"bad or circular $ref {ref}"
        seen.add(ref)
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def success_problems(document: dict[str, Any], schema: dict[str, Any] | None) -> str | None:
    """Why a 2xx JSON schema is not typed, or None."""
    if not schema:
        return "has no schema"
    if "$ref" not in schema and "properties" not in schema:
        return f"is untyped ({schema.get('title') or schema})"
    resolved = resolve(document, schema)
    if not resolved.get("properties"):
        return f"refers to a schema without properties ({schema.get('$ref')})"
    return None


def test_every_success_body_is_a_typed_schema(document):
    broken = []
    for name, _, operation in operations(document):
        for status, response in operation.get("responses", {}).items():
            if not status.startswith("2"):
                continue
            content = response.get("content") or {}
            if "application/json" not in content:
                continue  # 204, or another media type (a file, a redirect)
            why = success_problems(document, content["application/json"].get("schema"))
            if why:
                broken.append(f"{name} {status} {why}")
    assert not broken, f"{len(broken)} untyped success responses:\n" + "\n".join(broken)


def test_every_error_is_a_problem(document):
    broken = []
    for name, _, operation in operations(document):
        for status, response in operation.get("responses", {}).items():
            if status[0] not in "45":
                continue
            content = response.get("content") or {}
            schema = content.get(PROBLEM_MEDIA_TYPE, {}).get("schema")
            if sorted(content) != [PROBLEM_MEDIA_TYPE] or schema != {"$ref": PROBLEM_SCHEMA_REF}:
                broken.append(f"{name} {status}: {sorted(content) or 'no content'} {schema or ''}")
    assert not broken, f"{len(broken)} errors that are not problems:\n" + "\n".join(broken)


def test_every_operation_declares_its_platform_errors(document):
    from funnel.api.context import is_public

    broken = []
    for name, path, operation in operations(document):
        responses = operation.get("responses", {})
        if not any(status.startswith("2") or status.startswith("3") for status in responses):
            broken.append(f"{name}: no success response")
        if not is_public(path) and "401" not in responses:
            broken.append(f"{name}: authenticated but no 401")
        if (operation.get("parameters") or operation.get("requestBody")) and "422" not in responses:
            broken.append(f"{name}: has inputs but no 422")
        if operation.get("requestBody") and "400" not in responses:
            broken.append(f"{name}: has a body but no 400 (invalid JSON)")
    assert not broken, f"{len(broken)} operations missing platform errors:\n" + "\n".join(broken)


def test_the_walk_catches_an_untyped_route():
    """The rules above are not vacuous: a plain ``-> dict`` route and a problem-less error are caught."""
    from fastapi import APIRouter, FastAPI

    router = APIRouter(prefix="/v1")

    @router.get("/loose")
    def loose() -> dict:
        return {}

    @router.get("/typed", responses={404: {"description": "plain JSON", "content": {"application/json": {}}}})
    def typed() -> Problem:  # a model, but its 404 is not a problem
        raise AssertionError

    app = FastAPI()
    app.include_router(router)
    document = app.openapi()  # FastAPI's own document is enough here
    assert success_problems(document, document["paths"]["/v1/loose"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"])
    assert success_problems(document, document["paths"]["/v1/typed"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]) is None
    with pytest.raises(AssertionError, match="GET /v1/typed 404"):
        test_every_error_is_a_problem(document)
