"""The audit log's data access: the SQL over ``audit_logs``. ``funnel.platform.audit`` decides what is recorded."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection
from funnel.platform.pagination import Page, keyset_page

COLUMNS = "id, user_id, action, resource_type, resource_id, details, ip, created_at"


def insert_entry(conn: Connection, user_id: str, action: str, resource_type: str, resource_id: str,
                 details: dict[str, Any], ip: str | None) -> None:
    conn.execute("INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details, ip) "
                 "VALUES (%s, %s, %s, %s, %s, %s)", (user_id, action, resource_type, resource_id, Jsonb(details), ip))


def entries_page(conn: Connection, *, filters: dict[str, Any], since: datetime | None, until: datetime | None,
                 cursor: str | None, limit: int) -> Page:
    """Newest first; ``filters`` are column -> value equalities (None ignored), ``since``/``until`` bound
    ``created_at`` (until excluded). The log's ids are bigints (identity), not uuids."""
    conditions: list[tuple[str, list[Any]]] = []
    if since is not None:
        conditions.append(("created_at >= %s", [since]))
    if until is not None:
        conditions.append(("created_at < %s", [until]))
    return keyset_page(conn, table="audit_logs", columns=COLUMNS, cursor=cursor, limit=limit, id_type="bigint",
                       conditions=conditions, filters=filters)
