"""The control DB's tenant data: every SQL statement over ``tenants``, ``login_directory`` and
``api_key_prefixes``, as small named functions.

These are the lookups that find a tenant before any of its data is read (an e-mail's workspaces at sign-in,
an API key's tenant), and the tenant rows provisioning writes. The rules (slugs, statuses, which workspace
a login means) stay in ``tenants`` and ``auth``. ``funnel.db.TenantDirectory`` reads a tenant's row itself
(``tenant_transaction`` needs it, and db sits below the platform).
"""
from __future__ import annotations

from psycopg import sql

from funnel.db import Connection, Row

TENANT_COLUMNS = "id, name, slug, isolation, status, plan, database_url, created_at"


# ---------------------------------------------------------------- tenants

def insert_tenant(conn: Connection, *, tenant_id: str, name: str, slug: str, database_url: str, isolation: str,
                  plan: str) -> None:
    """A new tenant, ``provisioning`` (the column's default) until ``activate_tenant``; a taken slug raises
    psycopg's UniqueViolation on ``tenants_slug_key``."""
    conn.execute("INSERT INTO tenants (id, name, slug, database_url, isolation, plan) "
                 "VALUES (%s, %s, %s, %s, %s, %s)", (tenant_id, name, slug, database_url, isolation, plan))


def activate_tenant(conn: Connection, tenant_id: str) -> None:
    conn.execute("UPDATE tenants SET status = 'active', updated_at = now() WHERE id = %s", (tenant_id,))


def delete_tenant(conn: Connection, tenant_id: str) -> None:
    """Remove the row of a tenant whose provisioning failed."""
    conn.execute("DELETE FROM tenants WHERE id = %s", (tenant_id,))


def list_tenants(conn: Connection) -> list[Row]:
    """Every tenant (``TENANT_COLUMNS``), oldest first."""
    return conn.execute(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY created_at").fetchall()


def active_tenant_ids(conn: Connection) -> list[str]:
    """The ids of the active tenants, oldest first."""
    return [row["id"] for row in conn.execute("SELECT id FROM tenants WHERE status = 'active' ORDER BY created_at")]


def drop_database(conn: Connection, dbname: str) -> None:
    """Drop a tenant database (``conn``: an autocommit owner connection), disconnecting its sessions."""
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


# ---------------------------------------------------------------- the login directory

def login_entries(conn: Connection, email: str) -> list[Row]:
    """The active workspaces where ``email`` has a user: ``tenant_id, user_id, slug``, by slug."""
    return conn.execute(
        "SELECT d.tenant_id, d.user_id, t.slug FROM login_directory d JOIN tenants t ON t.id = d.tenant_id "
        "WHERE d.email = %s AND t.status = 'active' ORDER BY t.slug", (email,)).fetchall()


def add_login_entry(conn: Connection, email: str, tenant_id: str, user_id: object) -> None:
    """``email`` signs in to ``tenant_id`` as ``user_id`` (replacing an earlier user of that e-mail there)."""
    conn.execute("INSERT INTO login_directory (email, tenant_id, user_id) VALUES (%s, %s, %s) "
                 "ON CONFLICT (email, tenant_id) DO UPDATE SET user_id = EXCLUDED.user_id",
                 (email, tenant_id, user_id))


# ---------------------------------------------------------------- API key prefixes

def api_key_tenant(conn: Connection, prefix: str) -> str | None:
    """The tenant whose API key has this prefix, or None."""
    row = conn.execute("SELECT tenant_id FROM api_key_prefixes WHERE prefix = %s", (prefix,)).fetchone()
    return None if row is None else str(row["tenant_id"])


def register_api_key_prefix(conn: Connection, prefix: str, tenant_id: str) -> None:
    conn.execute("INSERT INTO api_key_prefixes (prefix, tenant_id) VALUES (%s, %s)", (prefix, tenant_id))
