"""The outreach area's data access for message templates: every SQL statement over ``templates``.

The rules (known ``{{variables}}`` only, what a partial update keeps) stay in ``templates``, which calls
these. Rows are psycopg dict rows, returned as they come: the routes' response models validate them.
"""
from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row
from funnel.platform.pagination import Page, keyset_page

TEMPLATE_COLUMNS = "id, user_id, type, title, body, metadata, is_active, created_at"


def insert_template(conn: Connection, user_id: str | None, template_type: str, title: str, body: str,
                    metadata: dict[str, Any]) -> Row:
    row = conn.execute(f"INSERT INTO templates (user_id, type, title, body, metadata) VALUES (%s, %s, %s, %s, %s) "
                       f"RETURNING {TEMPLATE_COLUMNS}",
                       (user_id, template_type, title, body, Jsonb(metadata))).fetchone()
    assert row is not None  # INSERT ... RETURNING returns the row it inserted
    return row


def get_template(conn: Connection, template_id: str) -> Row | None:
    return conn.execute(f"SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = %s", (template_id,)).fetchone()


def templates_page(conn: Connection, cursor: str | None, limit: int, template_type: str | None) -> Page:
    return keyset_page(conn, table="templates", columns=TEMPLATE_COLUMNS, cursor=cursor, limit=limit,
                       filters={"type": template_type})


def update_template(conn: Connection, template_id: str, title: str, body: str, metadata: dict[str, Any],
                    is_active: bool) -> Row | None:
    """Replace the editable fields (None when the template is gone)."""
    return conn.execute(f"UPDATE templates SET title = %s, body = %s, metadata = %s, is_active = %s WHERE id = %s "
                        f"RETURNING {TEMPLATE_COLUMNS}",
                        (title, body, Jsonb(metadata), is_active, template_id)).fetchone()


def delete_template(conn: Connection, template_id: str) -> bool:
    """False when there was none."""
    return conn.execute("DELETE FROM templates WHERE id = %s", (template_id,)).rowcount != 0
