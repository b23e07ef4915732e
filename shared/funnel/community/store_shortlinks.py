"""The community area's shortlink data: the tenant's ``shortlinks`` rows and the control DB's
``shortlink_routes`` ((host, key) -> tenant, which the redirect reads first). Every SQL statement over them, as
small named functions; the rules are in ``funnel.community.shortlinks``. Clicks are written through
``funnel.community.activities``."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

COLUMNS = ("shortlink_id, key, host, target_url, campaign_id, resource_id, attributes, enabled, redirect_status, "
           "created_at, updated_at")


# ---------------------------------------------------------------- the tenant's shortlinks

def insert_shortlink(conn: Connection, *, key: str, host: str, target_url: str, campaign_id: UUID | None,
                     resource_id: UUID | None, attributes: dict[str, Any], enabled: bool, redirect_status: int) -> Row:
    return fetch_one(conn.execute(
        f"INSERT INTO shortlinks (key, host, target_url, campaign_id, resource_id, attributes, enabled, "
        f"redirect_status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
        (key, host, target_url, campaign_id, resource_id, Jsonb(attributes), enabled, redirect_status)))


def shortlink(conn: Connection, shortlink_id: UUID | str, *, for_update: bool = False) -> Row | None:
    lock = " FOR UPDATE" if for_update else ""
    return conn.execute(f"SELECT {COLUMNS} FROM shortlinks WHERE shortlink_id = %s{lock}",
                        (str(shortlink_id),)).fetchone()


def key_taken(conn: Connection, key: str) -> bool:
    return conn.execute("SELECT 1 FROM shortlinks WHERE key = %s", (key,)).fetchone() is not None


def shortlinks_page(conn: Connection, *, campaign_id: UUID | None, enabled: bool | None, cursor: str | None,
                    limit: int) -> Page:
    return keyset_page(conn, table=f"(SELECT shortlink_id AS id, {COLUMNS} FROM shortlinks) AS s",
                       columns=f"id, {COLUMNS}", filters={"campaign_id": campaign_id, "enabled": enabled},
                       cursor=cursor, limit=limit)


def update_shortlink(conn: Connection, shortlink_id: UUID | str, fields: dict[str, Any]) -> Row:
    """``fields``: any of target_url, campaign_id, resource_id, attributes (a dict), enabled, redirect_status."""
    values = {k: Jsonb(v) if k == "attributes" else v for k, v in fields.items()}
    assignments = "".join(f"{column} = %s, " for column in values)
    return fetch_one(conn.execute(
        f"UPDATE shortlinks SET {assignments}updated_at = now() WHERE shortlink_id = %s RETURNING {COLUMNS}",
        (*values.values(), str(shortlink_id))))


def delete_shortlink(conn: Connection, shortlink_id: UUID | str) -> Row | None:
    return conn.execute("DELETE FROM shortlinks WHERE shortlink_id = %s RETURNING key, host",
                        (str(shortlink_id),)).fetchone()


def shortlink_domain(conn: Connection) -> str | None:
    """The tenant's ``system_settings.shortlink_domain`` (None when unset or without a settings row)."""
    row = conn.execute("SELECT shortlink_domain FROM system_settings").fetchone()
    return (row or {}).get("shortlink_domain") or None


def live_shortlink(conn: Connection, shortlink_id: UUID | str) -> Row | None:
    """The redirect's read: the link when it is enabled."""
    return conn.execute("SELECT shortlink_id, key, target_url, campaign_id, resource_id, attributes, "
                        "redirect_status FROM shortlinks WHERE shortlink_id = %s AND enabled",
                        (str(shortlink_id),)).fetchone()


def developer_of_anon(conn: Connection, anon_id: str) -> UUID | None:
    """The developer an anonymous id was last seen with (an activity carrying both), if any."""
    row = conn.execute("SELECT developer_id FROM activities WHERE anon_id = %s AND developer_id IS NOT NULL "
                       "ORDER BY occurred_at DESC LIMIT 1", (anon_id,)).fetchone()
    return row["developer_id"] if row else None


def attribute_anonymous_clicks(conn: Connection, anon_id: str, developer_id: UUID) -> int:
    """Give the anon id's earlier anonymous shortlink clicks and scans to the developer it now belongs to."""
    return conn.execute("UPDATE activities SET developer_id = %s WHERE anon_id = %s AND developer_id IS NULL "
                        "AND account_id IS NULL AND source = 'shortlink'", (developer_id, anon_id)).rowcount


# ---------------------------------------------------------------- the control DB's routes

def claim_route(control: Connection, host: str, key: str, tenant_id: str, shortlink_id: UUID | str) -> bool:
    """Claim (host, key) for the tenant's link; False when it is someone's already."""
    return control.execute(
        "INSERT INTO shortlink_routes (host, key, tenant_id, shortlink_id) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (host, key) DO NOTHING RETURNING key", (host, key, tenant_id, str(shortlink_id))
    ).fetchone() is not None


def release_route(control: Connection, host: str, key: str, tenant_id: str) -> None:
    control.execute("DELETE FROM shortlink_routes WHERE host = %s AND key = %s AND tenant_id = %s",
                    (host, key, tenant_id))


def route(control: Connection, host: str, key: str) -> Row | None:
    """The link a request for ``key`` on ``host`` means: the host's own claim, else the default domain's ('')."""
    return control.execute(
        "SELECT tenant_id, shortlink_id FROM shortlink_routes WHERE key = %s AND host IN (%s, '') "
        "ORDER BY host DESC LIMIT 1", (key, host)).fetchone()
