"""Audit log: every write records who did what to which resource, in the same transaction."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from funnel.db import Connection
from funnel.platform import store_audit
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal


def record(conn: Connection, actor: Principal | str, action: str, resource_type: str, resource_id: Any,
           details: dict | None = None) -> None:
    """``actor`` is the calling principal (its ``actor`` name and IP are recorded) or a system actor's name."""
    user_id = actor.actor if isinstance(actor, Principal) else actor
    ip = actor.ip if isinstance(actor, Principal) else None
    store_audit.insert_entry(conn, user_id, action, resource_type, str(resource_id), details or {}, ip)


def list_entries(conn: Connection, *, user_id: str | None = None, action: str | None = None,
                 resource_type: str | None = None, resource_id: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 cursor: str | None = None, limit: int = 50) -> Page:
    return store_audit.entries_page(conn, filters={"user_id": user_id, "action": action,
                                                   "resource_type": resource_type, "resource_id": resource_id},
                                    since=since, until=until, cursor=cursor, limit=limit)
