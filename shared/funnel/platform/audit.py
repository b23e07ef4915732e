"""Audit log: every write records who did what to which resource, in the same transaction."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from funnel.platform.pagination import Page, decode_cursor, encode_cursor
from funnel.platform.principal import Principal


def record(conn: Connection, actor: Principal | str, action: str, resource_type: str, resource_id: Any,
           details: dict | None = None) -> None:
    user_id = actor.actor if isinstance(actor, Principal) else actor
    ip = actor.ip if isinstance(actor, Principal) else None
    conn.execute(
        "INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details, ip) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (user_id, action, resource_type, str(resource_id), Jsonb(details or {}), ip))


def list_entries(conn: Connection, *, user_id: str | None = None, action: str | None = None,
                 resource_type: str | None = None, resource_id: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 cursor: str | None = None, limit: int = 50) -> Page:
    clauses, params = [], []
    for column, value in (("user_id", user_id), ("action", action), ("resource_type", resource_type),
                          ("resource_id", resource_id)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if since is not None:
        clauses.append("created_at >= %s")
        params.append(since)
    if until is not None:
        clauses.append("created_at < %s")
        params.append(until)
    if cursor:
        created_at, last_id = decode_cursor(cursor, 2)
        clauses.append("(created_at, id) < (%s::timestamptz, %s::bigint)")
        params += [created_at, last_id]
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(
        f"SELECT id, user_id, action, resource_type, resource_id, details, ip, created_at FROM audit_logs "
        f"{where} ORDER BY created_at DESC, id DESC LIMIT %s", (*params, limit + 1)).fetchall()
    return Page.from_rows(rows, limit, lambda r: encode_cursor([r["created_at"].isoformat(), r["id"]]))
