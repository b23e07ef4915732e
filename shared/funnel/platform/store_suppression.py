"""The do-not-contact list's data access: the SQL over ``suppressions`` (values stored normalised).

What is normalised how, what a contact matches and which entries may be removed stay in
``funnel.platform.suppression``, which calls these.
"""
from __future__ import annotations

from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

COLUMNS = "id, kind, value, reason, source, created_at"


def upsert(conn: Connection, kind: str, value: str, reason: str, source: str | None) -> Row:
    """Add the entry; an entry already there keeps its source and takes the new reason."""
    return fetch_one(conn.execute(
        f"INSERT INTO suppressions (kind, value, reason, source) VALUES (%s, %s, %s, %s) "
        f"ON CONFLICT (tenant_id, kind, value) DO UPDATE SET reason = EXCLUDED.reason RETURNING {COLUMNS}",
        (kind, value, reason, source)))


def first_match(conn: Connection, candidates: list[tuple[str, str]]) -> Row | None:
    """``kind, reason`` of one entry equal to one of the (kind, normalised value) ``candidates``, or None."""
    return conn.execute("SELECT kind, reason FROM suppressions WHERE (kind, value) IN "
                        "(SELECT * FROM unnest(%s::text[], %s::text[])) LIMIT 1",
                        ([k for k, _ in candidates], [v for _, v in candidates])).fetchone()


def page(conn: Connection, cursor: str | None, limit: int, kind: str | None) -> Page:
    return keyset_page(conn, table="suppressions", columns=COLUMNS, cursor=cursor, limit=limit,
                       filters={"kind": kind})


def select(conn: Connection, suppression_id: str) -> Row | None:
    return conn.execute("SELECT id, kind, value, reason FROM suppressions WHERE id = %s", (suppression_id,)).fetchone()


def delete(conn: Connection, suppression_id: str) -> None:
    conn.execute("DELETE FROM suppressions WHERE id = %s", (suppression_id,))
