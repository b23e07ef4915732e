"""Cursor pagination: opaque cursors over a (created_at, id) keyset, newest first.

``keyset_page`` is the one generic page query every store's list runs (the store names the table, columns and
filters); it is data-access machinery, exempt from the store-module check like ``funnel.db``.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from funnel.db import Connection, Row
from funnel.platform.errors import ValidationFailed

MAX_LIMIT = 200


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def _invalid_cursor(why: str) -> ValidationFailed:
    return ValidationFailed.at(["query", "cursor"], f"not a cursor this list gave ({why}); pass `next_cursor` as it "
                                                    f"came, or leave it out for the first page")


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The ``size`` strings a cursor of ``encode_cursor`` holds. A cursor is the caller's input: anything else
    (other JSON, numbers, objects) is a 422 naming ``cursor``, never a value handed to the database."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _invalid_cursor("not base64 of JSON") from exc
    if not isinstance(values, list) or len(values) != size or not all(isinstance(v, str) for v in values):
        raise _invalid_cursor(f"not a list of {size} strings")
    if any("\x00" in value for value in values):
        raise _invalid_cursor("a NUL character")
    return values


def _keyset_position(cursor: str, id_type: str) -> tuple[datetime, str | int]:
    """(created_at, id) of a keyset cursor, parsed here so that a crafted one is a 422, not a database error."""
    created_at, last_id = decode_cursor(cursor, 2)
    try:
        moment = datetime.fromisoformat(created_at)
        position: str | int = str(UUID(last_id)) if id_type == "uuid" else int(last_id)
    except ValueError as exc:
        raise _invalid_cursor("not a (time, id) position") from exc
    if moment.tzinfo is None:
        raise _invalid_cursor("a time without its zone")
    if isinstance(position, int) and not -2**63 <= position < 2**63:
        raise _invalid_cursor("an id out of range")
    return moment, position


@dataclass
class Page:
    items: list[Row]
    next_cursor: str | None

    @classmethod
    def from_rows(cls, rows: list[Row], limit: int, cursor_of: Callable[[Row], str]) -> Page:
        """``rows`` fetched with ``LIMIT limit + 1``: the extra row only says there is a next page."""
        has_more = len(rows) > limit
        items = rows[:limit]
        return cls(items=items, next_cursor=cursor_of(items[-1]) if has_more and items else None)


def keyset_page(conn: Connection, *, table: str, columns: str, cursor: str | None, limit: int,
                filters: dict[str, Any] | None = None, conditions: list[tuple[str, list[Any]]] | None = None,
                id_type: str = "uuid", newest_first: bool = True) -> Page:
    """One page of ``table`` ordered by (created_at, id): equality ``filters`` (None values ignored),
    extra ``conditions`` as (sql, params), and the keyset position from ``cursor``."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (filters or {}).items():
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    for clause, clause_params in conditions or []:
        clauses.append(clause)
        params += clause_params
    direction, comparison = ("DESC", "<") if newest_first else ("ASC", ">")
    if cursor:
        created_at, last_id = _keyset_position(cursor, id_type)
        clauses.append(f"(created_at, id) {comparison} (%s::timestamptz, %s::{id_type})")
        params += [created_at, last_id]
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(f"SELECT {columns} FROM {table} {where} ORDER BY created_at {direction}, id {direction} "
                        f"LIMIT %s", (*params, limit + 1)).fetchall()
    return Page.from_rows(rows, limit, lambda r: encode_cursor([r["created_at"].isoformat(), str(r["id"])]))
