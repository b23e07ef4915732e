"""The community area's activity data: activities and the resources they point at. Every SQL statement over them,
as small named functions; the rules are in ``funnel.community.activities`` (and ``imports`` for CSV files).

A batch goes in as arrays (``unnest``): one statement per batch, not one per activity.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from funnel.db import Connection, Row
from funnel.platform.errors import ValidationFailed
from funnel.platform.pagination import Page, decode_cursor, encode_cursor

ACTIVITY_COLUMNS = ("activity_id, developer_id, account_id, anon_id, resource_id, action, occurred_at, recorded_at, "
                    "source, source_ref, category, group_key, metadata, confidence::float8 AS confidence, dedup_key, "
                    "ingested_at")
# The columns an ingest writes, in the order of insert_activities' arrays and of the import's staging table.
INSERT_COLUMNS = ("activity_id", "developer_id", "account_id", "anon_id", "resource_id", "action", "occurred_at",
                  "source", "source_ref", "category", "group_key", "metadata", "dedup_key")
_ARRAY_TYPES = ("uuid[]", "uuid[]", "uuid[]", "text[]", "uuid[]", "text[]", "timestamptz[]", "text[]", "text[]",
                "text[]", "text[]", "jsonb[]", "text[]")


def accounts_by_ids(conn: Connection, account_ids: Sequence[UUID]) -> list[Row]:
    return conn.execute("SELECT account_id, developer_id FROM accounts WHERE account_id = ANY(%s)",
                        (list(account_ids),)).fetchall()


def live_developers(conn: Connection, developer_ids: Sequence[UUID]) -> list[Row]:
    """(developer_id, live_id): each developer and the live one it was merged into (itself when not merged); a
    developer that is not the tenant's is missing."""
    return conn.execute(
        "WITH RECURSIVE chain AS ("
        " SELECT developer_id AS asked, developer_id, merged_into, 0 AS hops FROM developers"
        " WHERE developer_id = ANY(%s)"
        " UNION ALL SELECT c.asked, d.developer_id, d.merged_into, c.hops + 1 FROM chain c"
        " JOIN developers d ON d.developer_id = c.merged_into WHERE c.hops < 50)"
        " SELECT asked AS developer_id, developer_id AS live_id FROM chain WHERE merged_into IS NULL",
        (list(developer_ids),)).fetchall()


def developers_without_consent(conn: Connection, developer_ids: Sequence[UUID]) -> set[UUID]:
    rows = conn.execute("SELECT developer_id FROM developers WHERE developer_id = ANY(%s) AND NOT consent_analytics",
                        (list(developer_ids),)).fetchall()
    return {r["developer_id"] for r in rows}


def resources_by_ids(conn: Connection, resource_ids: Sequence[UUID]) -> list[Row]:
    return conn.execute("SELECT resource_id, category, group_key FROM resources WHERE resource_id = ANY(%s)",
                        (list(resource_ids),)).fetchall()


def upsert_resources(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[Row]:
    """Find or create each resource by (category, external_id); what a row says (title, url, group key) fills in
    or refreshes the stored one. Returns resource_id, category, external_id, group_key of every row."""
    return conn.execute(
        "INSERT INTO resources AS r (category, external_id, title, url, group_key) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
        "ON CONFLICT (tenant_id, category, external_id) WHERE external_id IS NOT NULL DO UPDATE SET "
        "title = coalesce(EXCLUDED.title, r.title), url = coalesce(EXCLUDED.url, r.url), "
        "group_key = coalesce(EXCLUDED.group_key, r.group_key), "
        "updated_at = CASE WHEN (EXCLUDED.title, EXCLUDED.url, EXCLUDED.group_key) IS NOT DISTINCT FROM "
        "(r.title, r.url, r.group_key) THEN r.updated_at ELSE now() END "
        "RETURNING resource_id, category, external_id, group_key",
        ([r["category"] for r in rows], [r["external_id"] for r in rows], [r.get("title") for r in rows],
         [r.get("url") for r in rows], [r.get("group_key") for r in rows])).fetchall()


def insert_activities(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[UUID]:
    """Insert ``rows`` (INSERT_COLUMNS; ``metadata`` as JSON text or None); a dedup key the tenant has already
    (or that comes earlier in ``rows``) is skipped. Returns the ids inserted."""
    arrays = [[r[c] for r in rows] for c in INSERT_COLUMNS]
    placeholders = ", ".join(f"%s::{t}" for t in _ARRAY_TYPES)
    inserted = conn.execute(
        f"INSERT INTO activities ({', '.join(INSERT_COLUMNS)}) SELECT * FROM unnest({placeholders}) "
        f"ON CONFLICT (tenant_id, dedup_key) DO NOTHING RETURNING activity_id", arrays).fetchall()
    return {r["activity_id"] for r in inserted}


def activity_ids_by_dedup_key(conn: Connection, dedup_keys: Sequence[str]) -> dict[str, UUID]:
    rows = conn.execute("SELECT dedup_key, activity_id FROM activities WHERE dedup_key = ANY(%s)",
                        (list(dedup_keys),)).fetchall()
    return {r["dedup_key"]: r["activity_id"] for r in rows}


def activities_by_ids(conn: Connection, activity_ids: Sequence[UUID]) -> list[Row]:
    return conn.execute(f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE activity_id = ANY(%s)",
                        (list(activity_ids),)).fetchall()


def activity(conn: Connection, activity_id: UUID) -> Row | None:
    return conn.execute(f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE activity_id = %s",
                        (activity_id,)).fetchone()


def _position(cursor: str) -> tuple[datetime, UUID]:
    occurred_at, activity_id = decode_cursor(cursor, 2)
    try:
        moment, last = datetime.fromisoformat(occurred_at), UUID(activity_id)
    except ValueError as exc:
        raise ValidationFailed.at(["query", "cursor"], "not a cursor this list gave (not a (time, id) position)") \
            from exc
    if moment.tzinfo is None:
        raise ValidationFailed.at(["query", "cursor"], "not a cursor this list gave (a time without its zone)")
    return moment, last


def activities_page(conn: Connection, *, filters: dict[str, Any], occurred_from: datetime | None,
                    occurred_to: datetime | None, cursor: str | None, limit: int) -> Page:
    """Newest first by (occurred_at, activity_id). The cursor's time also bounds ``occurred_at <=`` so that the
    (tenant, <filter>, occurred_at DESC) indexes start the scan at the position instead of filtering up to it."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in filters.items():
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if occurred_from is not None:
        clauses.append("occurred_at >= %s")
        params.append(occurred_from)
    if occurred_to is not None:
        clauses.append("occurred_at < %s")
        params.append(occurred_to)
    if cursor:
        moment, last = _position(cursor)
        clauses.append("occurred_at <= %s AND (occurred_at, activity_id) < (%s, %s)")
        params += [moment, moment, last]
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(f"SELECT {ACTIVITY_COLUMNS} FROM activities {where} "
                        f"ORDER BY occurred_at DESC, activity_id DESC LIMIT %s", (*params, limit + 1)).fetchall()
    return Page.from_rows(rows, limit, lambda r: encode_cursor([r["occurred_at"].isoformat(), str(r["activity_id"])]))
