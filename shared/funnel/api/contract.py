"""The API's typed contract: response models, the page envelope and the problem schema.

A frontend generates its client from ``/openapi.json``, so every route says what it returns:

- a success body is a subclass of ``Out`` (or ``Page[SomeOut]`` for lists). ``Out`` forbids fields it
  does not declare, so a service that starts returning a new column fails the suite (the response is
  validated against the model) instead of silently leaving the document behind;
- every error is ``application/problem+json`` with the one ``Problem`` schema. A route lists the errors
  its own rules raise with ``responses=problems(404, 409)``; the ones every route of a kind can give
  (401 without credentials, 403 below the role, 422/400 on bad input, 413/415 on bodies, 429 and 503
  where the platform limits or loses an upstream) are added by ``funnel.api.openapi`` from what the
  route depends on, so they cannot be forgotten.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"

ERROR_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "No valid credentials (Authorization: Bearer or X-Api-Key)",
    402: "The tenant's plan does not include this, or its subscription is not active",
    403: "The caller's role or API key scope does not allow this",
    404: "Not found (another tenant's resources are not found either)",
    409: "Conflicts with the resource's current state",
    413: "The body is larger than the API accepts",
    415: "The body's content type is not accepted",
    422: "The request is not valid; `errors` names each field",
    429: "Too many requests; retry after `Retry-After` seconds",
    503: "An upstream service is unavailable; retry after `Retry-After` seconds",
}


# Objects and arrays nested deeper than this are refused in every JSON body (``funnel.api.context``;
# docs/conventions.md, "Limits"): no body of the API needs more, and a document a few hundred levels deep
# can be stored but not serialised back (pydantic stops at 255 levels), so one contact's metadata would
# break every list holding it.
MAX_JSON_DEPTH = 32


def _within_depth(value: Any, levels: int) -> Any:
    """``value`` with whatever lies ``levels`` containers down given as its JSON text."""
    if not isinstance(value, dict | list):
        return value
    if levels <= 0:
        try:
            return json.dumps(value, ensure_ascii=False)
        except (RecursionError, ValueError):
            return "(nested too deep to show)"
    if isinstance(value, dict):
        return {key: _within_depth(item, levels - 1) for key, item in value.items()}
    return [_within_depth(item, levels - 1) for item in value]


# A free-form object a client stored (contact metadata). Rows saved before bodies were limited to MAX_JSON_DEPTH may
# nest deeper; they are answered with their deeper part as JSON text instead of failing every page that holds them.
FreeJsonObject = Annotated[dict[str, Any], PlainSerializer(lambda value: _within_depth(value, MAX_JSON_DEPTH),
                                                           return_type=dict[str, Any])]


class Out(BaseModel):
    """Base of every response model: undeclared fields are an error, so the document cannot drift."""

    model_config = ConfigDict(extra="forbid")


T = TypeVar("T")


class Page(Out, Generic[T]):
    """One page of a list, newest first unless the route says otherwise."""

    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class Health(Out):
    """The answer of GET /healthz: the function is up (it checks nothing behind it)."""

    status: Literal["ok"]


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: body/query/path, then the field names")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details. Some problems carry more members (e.g. `errors`, `limit`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="the request path")
    errors: list[FieldError] | None = Field(default=None, description="validation problems, one per field")


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    return {"description": description or ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}}


def problems(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the problem statuses its own rules can give.

    ``problems(404, 409, conflict="the task is not paused")`` documents 404 and 409 with 409's
    description replaced (keys: not_found, conflict, payment_required, unavailable, validation)."""
    named = {"validation": 422, "not_found": 404, "conflict": 409, "payment_required": 402,
             "unavailable": 503, "forbidden": 403, "rate_limited": 429}
    by_status = {named[key]: text for key, text in descriptions.items()}
    return {status: problem_response(status, by_status.get(status)) for status in statuses}
