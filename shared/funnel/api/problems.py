"""RFC 9457 problem responses for every error the API returns."""
from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg.errors import CheckViolation, DataError, ForeignKeyViolation, NotNullViolation, ReadOnlySqlTransaction
from starlette.exceptions import HTTPException as StarletteHTTPException

from funnel.api.contract import PROBLEM_MEDIA_TYPE
from funnel.observability import logger
from funnel.platform.errors import FunnelError, RateLimited, ServiceUnavailable, ValidationFailed

PROBLEM_BASE = "https://docs.funnel.dev/problems/"
HTTP_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
               405: "Method not allowed", 409: "Conflict", 413: "Payload too large",
               415: "Unsupported media type", 422: "Validation failed", 429: "Too many requests",
               500: "Internal server error"}


def problem(status: int, detail: str, *, instance: str | None = None, type_suffix: str | None = None,
            title: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + (type_suffix or str(status)), "title": title or HTTP_TITLES.get(status, "Error"),
            "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def from_error(error: FunnelError, instance: str | None = None) -> JSONResponse:
    retry_after = str(error.retry_after_seconds) if isinstance(error, RateLimited) else {503: "5"}.get(error.status)
    headers = {"Retry-After": retry_after} if retry_after else None
    if error.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return problem(error.status, error.detail, instance=instance, type_suffix=error.type_suffix,
                   title=error.title, headers=headers, **error.extra)


# The handlers take ``Exception`` because that is what Starlette's registry types them with; each is registered
# for one class (funnel.api.app.create_app), so the assertion only tells mypy which.

async def funnel_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FunnelError)
    return from_error(exc, request.url.path)


def _clean_error(error: dict) -> dict:
    cleaned = {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}
    return cleaned


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_clean_error(e) for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errors):
        return problem(400, "the request body is not valid JSON", instance=request.url.path,
                       type_suffix="invalid-json", errors=errors)
    return problem(422, "the request does not match the schema", instance=request.url.path,
                   type_suffix="validation", errors=errors)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTP_TITLES.get(exc.status_code, "Error")
    return problem(exc.status_code, detail, instance=request.url.path, headers=getattr(exc, "headers", None))


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return problem(500, "an internal error occurred; it has been logged", instance=request.url.path)


# A row the request names that the database cannot find in this tenant: references between tenant tables are
# (tenant_id, column) -> (tenant_id, id) keys (migrations/README.md), so a neighbour's id and an unknown id
# fail the same key, and the answer is the same 422 naming the field. PostgreSQL reports the key's columns
# in the detail ("Key (tenant_id, contact_id)=(...) is not present in table ..."); the name is the fallback.
_KEY_COLUMNS = re.compile(r"^Key \(([^)]*)\)")


def referencing_field(exc: ForeignKeyViolation) -> str:
    """The column (other than ``tenant_id``) of the foreign key ``exc`` broke: the body's field."""
    match = _KEY_COLUMNS.match(exc.diag.message_detail or "")
    if match:
        columns = [c.strip().strip('"') for c in match.group(1).split(",")]
    else:  # a key named as PostgreSQL names one-column keys: <table>_<column>_fkey
        name, table = exc.diag.constraint_name or "", exc.diag.table_name or ""
        columns = [name.removeprefix(f"{table}_").removesuffix("_fkey")]
    return ", ".join(c for c in columns if c != "tenant_id") or "body"


async def foreign_key_violation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ForeignKeyViolation)
    if request.method == "DELETE" or "still referenced" in (exc.diag.message_detail or ""):
        return problem(409, "other records still refer to it", instance=request.url.path, type_suffix="conflict",
                       title="Conflict")
    return from_error(ValidationFailed.at(["body", referencing_field(exc)], "not found in this workspace", "reference"),
                      request.url.path)


# A value of the request that the database refuses although the models let it through: an explicit null for a
# column that has none (``PATCH {"url": null}``), a CHECK the body broke, a number out of the column's range, a
# text PostgreSQL cannot hold. It came from the request, so it is a 422 (naming the column when PostgreSQL says
# which), never a 500; it is logged, as the model should have refused it first.
async def refused_value_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotNullViolation | CheckViolation | DataError)
    logger.warning("the database refused a value of the request", extra={"path": request.url.path,
                                                                         "error": type(exc).__name__})
    column = exc.diag.column_name
    if column is None and isinstance(exc, CheckViolation):  # <table>_<column>_check, as PostgreSQL names them
        column = (exc.diag.constraint_name or "").removeprefix(f"{exc.diag.table_name}_").removesuffix("_check")
    reasons: dict[type, str] = {NotNullViolation: "may not be null", CheckViolation: "is not an allowed value"}
    reason = reasons.get(type(exc)) or exc.diag.message_primary or "is not a value the database can hold"
    return from_error(ValidationFailed.at(["body", column] if column else ["body"], reason, "database_refused"),
                      request.url.path)


# While an operator moves the workspace to another database server (funnel.platform.operations_move), its database
# is read-only: a write is refused with SQLSTATE 25006 until the directory points at the copy, a minute or so.
# That is a moment's unavailability the client should retry, not a server error.
async def read_only_workspace_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReadOnlySqlTransaction)
    logger.warning("a write reached a read-only tenant database (a move in progress)",
                   extra={"path": request.url.path})
    response = from_error(ServiceUnavailable("the workspace is being moved and is read-only for a moment; retry"),
                          request.url.path)
    response.headers["Retry-After"] = str(MOVE_RETRY_AFTER_SECONDS)
    return response


MOVE_RETRY_AFTER_SECONDS = 30
