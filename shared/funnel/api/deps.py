"""FastAPI dependencies shared by every area's routes."""
from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints

from funnel.api.contract import Out
from funnel.api.contract import Page as PageBody
from funnel.platform.errors import Forbidden, Unauthorized, ValidationFailed
from funnel.platform.pagination import MAX_LIMIT, Page
from funnel.platform.principal import Principal


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# The dependencies below do no I/O, so they are ``async def``: FastAPI runs a plain ``def`` dependency in
# its thread pool, a hand-off per dependency per request that shows in the warm latency.
async def principal(request: Request) -> Principal:
    found = getattr(request.state, "principal", None)
    if found is None:
        raise Unauthorized("authentication required")
    return found


CurrentPrincipal = Annotated[Principal, Depends(principal)]

_declared_query: dict[int, frozenset[str]] = {}


def _query_names(route: object) -> frozenset[str]:
    """The query parameters ``route`` declares (found once per route)."""
    names = _declared_query.get(id(route))
    if names is None:
        found: set[str] = set()
        pending = [getattr(route, "dependant", None)]
        while pending:
            dependant = pending.pop()
            if dependant is not None:
                found.update(field.alias for field in dependant.query_params)
                pending += dependant.dependencies
        names = _declared_query[id(route)] = frozenset(found)
    return names


async def no_nul_in_parameters(request: Request) -> None:
    """Every route's first dependency (``funnel.api.app``): a NUL character in a path or query parameter is a 422
    naming it. PostgreSQL text cannot hold NUL, so it would otherwise fail in the database as a 500; JSON bodies
    are checked by ``funnel.api.context``. Undeclared query parameters are ignored, as FastAPI ignores them."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise ValidationFailed.at(["path", name], "contains a NUL character", "string_nul")
    for name, value in request.query_params.multi_items():
        if "\x00" in value and name in _query_names(request.scope.get("route")):
            raise ValidationFailed.at(["query", name], "contains a NUL character", "string_nul")


def require(role: str):
    """Dependency factory: the caller needs at least ``role``."""

    async def check(caller: CurrentPrincipal) -> Principal:
        if not caller.has_role(role):
            raise Forbidden(f"this needs the {role} role or higher")
        return caller

    check.required_role = role  # type: ignore[attr-defined]  # read by funnel.api.openapi (documents 403)
    return Depends(check)


# A practical address check (one @, a dotted domain, no spaces); delivery is the real test.
# email-validator would add ~30 ms to the API's cold start for little more certainty.
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320,
                                         pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")]
Writer = Annotated[Principal, require("member")]
Admin = Annotated[Principal, require("admin")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]


OutT = TypeVar("OutT", bound=Out)


def page_body(page: Page) -> dict:
    return {"items": page.items, "next_cursor": page.next_cursor}


def page_of(item: type[OutT], page: Page) -> PageBody[OutT]:
    """A service's page of rows as a route's typed ``Page[item]`` body (each row validated as ``item``), so
    mypy checks the route's declared response model against what it returns."""
    return PageBody(items=[item.model_validate(row) for row in page.items], next_cursor=page.next_cursor)
