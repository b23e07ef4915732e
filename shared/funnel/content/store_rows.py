"""The one-row statements (by ``id``) the content stores share: select, update the given columns, delete.

``table`` and ``columns`` come from the store modules' constants and the column names in ``changes`` from the
routes' request models (never from a caller's data), so composing them into the statement is safe.
"""
from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one


def _adapted(value: Any) -> Any:
    """JSON columns (outline, analysis_result) take dicts and lists as jsonb."""
    return Jsonb(value) if isinstance(value, (dict, list)) else value


def select_by_id(conn: Connection, table: str, columns: str, row_id: str, *, for_update: bool = False) -> Row | None:
    return conn.execute(f"SELECT {columns} FROM {table} WHERE id = %s{' FOR UPDATE' if for_update else ''}",
                        (row_id,)).fetchone()


def update_by_id(conn: Connection, table: str, columns: str, row_id: str, changes: dict[str, Any]) -> Row | None:
    """Set ``changes`` (and ``updated_at``) on the row; with no changes, the row as it is."""
    if not changes:
        return select_by_id(conn, table, columns, row_id)
    assignments = ", ".join(f"{column} = %s" for column in changes)
    return conn.execute(f"UPDATE {table} SET {assignments}, updated_at = now() WHERE id = %s RETURNING {columns}",
                        (*map(_adapted, changes.values()), row_id)).fetchone()


def insert_row(conn: Connection, table: str, values: dict[str, Any], columns: str) -> Row:
    names = ", ".join(values)
    return fetch_one(conn.execute(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(values))}) "
                                  f"RETURNING {columns}", tuple(map(_adapted, values.values()))))


def delete_by_id(conn: Connection, table: str, row_id: str) -> bool:
    """Whether a row was deleted (False: none with that id is visible)."""
    return conn.execute(f"DELETE FROM {table} WHERE id = %s RETURNING id", (row_id,)).fetchone() is not None
