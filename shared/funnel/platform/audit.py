"""Audit log: every write records who did what to which resource, in the same transaction."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection
from funnel.platform.pagination import Page, keyset_page
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
    conditions = []
    if since is not None:
        conditions.append(("created_at >= %s", [since]))
    if until is not None:
        conditions.append(("created_at < %s", [until]))
    return keyset_page(conn, table="audit_logs", columns="id, user_id, action, resource_type, resource_id, details, "
                       "ip, created_at", cursor=cursor, limit=limit, id_type="bigint", conditions=conditions,
                       filters={"user_id": user_id, "action": action, "resource_type": resource_type,
                                "resource_id": resource_id})
