"""Data access of workspace deletion: the control DB's deletion columns of ``tenants`` (revision c0006), the claim
and lock a purge takes, and what the purge reads from a tenant database before it goes (its owners, the names of
its EventBridge schedules).

The rules (who may schedule, the grace period, the order of the purge) stay in ``funnel.platform.deletion``.
The control rows a purge removes are found by ``store_tenants.tables_with_tenant_id`` and deleted with
``store_tenants.delete_tenant_rows`` / ``delete_tenant``: every control table with a ``tenant_id`` column, so a
table added later is covered without a change here.
"""
from __future__ import annotations

from funnel.db import Connection, Row, fetch_one

WORKSPACE_COLUMNS = ("id, slug, name, isolation, plan, status, email_verified_at, deletion_requested_at, "
                     "deletion_due_at, deletion_requested_by")
# What a purge needs of its tenant (``tenants.delete_data`` and the report read the first ones).
PURGE_COLUMNS = ("id, name, slug, isolation, status, plan, database_url, server_id, created_at, "
                 "stripe_subscription_id")


# ---------------------------------------------------------------- control DB: the schedule

def workspace(conn: Connection, tenant_id: str) -> Row | None:
    """The tenant (``WORKSPACE_COLUMNS``) unless it is deleted, or None."""
    return conn.execute(f"SELECT {WORKSPACE_COLUMNS} FROM tenants WHERE id = %s AND status <> 'deleted'",
                        (tenant_id,)).fetchone()


def schedule(conn: Connection, tenant_id: str, requested_by: str, grace_days: int) -> Row | None:
    """Schedule the deletion of an active tenant that has none scheduled (``WORKSPACE_COLUMNS``); None when it
    has one (or is not active). One statement: of two requests at once, one schedules."""
    return conn.execute(
        f"UPDATE tenants SET deletion_requested_at = now(), deletion_due_at = now() + make_interval(days => %s), "
        f"deletion_requested_by = %s, updated_at = now() "
        f"WHERE id = %s AND status = 'active' AND deletion_requested_at IS NULL RETURNING {WORKSPACE_COLUMNS}",
        (grace_days, requested_by, tenant_id)).fetchone()


def lock_workspace(conn: Connection, tenant_id: str) -> Row | None:
    """The tenant (``WORKSPACE_COLUMNS``), its row locked until the transaction ends; None when it is deleted
    (a purge claimed it)."""
    return conn.execute(f"SELECT {WORKSPACE_COLUMNS} FROM tenants WHERE id = %s AND status <> 'deleted' FOR UPDATE",
                        (tenant_id,)).fetchone()


def clear(conn: Connection, tenant_id: str) -> None:
    """No deletion scheduled any more."""
    conn.execute("UPDATE tenants SET deletion_requested_at = NULL, deletion_due_at = NULL, "
                 "deletion_requested_by = NULL, updated_at = now() WHERE id = %s", (tenant_id,))


# ---------------------------------------------------------------- control DB: the purge

def due_tenant_ids(conn: Connection) -> list[str]:
    """Tenants whose deletion is due (or under way: a purge that stopped half way), the longest due first."""
    return [row["id"] for row in conn.execute(
        "SELECT id FROM tenants WHERE deletion_due_at <= now() ORDER BY deletion_due_at, id")]


def claim_due(conn: Connection, tenant_id: str) -> Row | None:
    """Mark a due tenant ``deleted`` (sign-ins, tokens and keys refused from now on) and answer it
    (``PURGE_COLUMNS``); None when its deletion is not due (cancelled meanwhile, or purged)."""
    return conn.execute(f"UPDATE tenants SET status = 'deleted', updated_at = now() "
                        f"WHERE id = %s AND deletion_due_at <= now() RETURNING {PURGE_COLUMNS}",
                        (tenant_id,)).fetchone()


def claim_now(conn: Connection, slug: str) -> Row | None:
    """Mark the tenant ``slug`` ``deleted`` and due now, whatever its schedule (the operator's deletion: due, so
    the hourly purge finishes it when this one stops half way), and answer it (``PURGE_COLUMNS``); None when
    there is no such tenant (any status: a half-purged one is found again)."""
    return conn.execute(
        f"UPDATE tenants SET status = 'deleted', deletion_requested_at = coalesce(deletion_requested_at, now()), "
        f"deletion_due_at = least(coalesce(deletion_due_at, now()), now()), updated_at = now() "
        f"WHERE slug = %s RETURNING {PURGE_COLUMNS}", (slug,)).fetchone()


def tenant_id_by_slug(conn: Connection, slug: str) -> str | None:
    """The id of the tenant ``slug``, whatever its status (a purge stopped half way left it ``deleted``)."""
    row = conn.execute("SELECT id FROM tenants WHERE slug = %s", (slug,)).fetchone()
    return None if row is None else str(row["id"])


def try_lock_purge(conn: Connection, tenant_id: str) -> bool:
    """Whether this session now holds the tenant's purge lock (until the session ends), so the hourly purge and
    an operator's never work on one tenant at once."""
    return bool(fetch_one(conn.execute(
        "SELECT pg_try_advisory_lock(hashtext('funnel.workspace_purge'), hashtext(%s)) AS ok", (tenant_id,)))["ok"])


def forget_subscription(conn: Connection, tenant_id: str) -> None:
    """The tenant's Stripe subscription is canceled: a purge run again does not cancel it again."""
    conn.execute("UPDATE tenants SET stripe_subscription_id = NULL, subscription_status = 'canceled', "
                 "updated_at = now() WHERE id = %s", (tenant_id,))


def database_exists(conn: Connection, dbname: str) -> bool:
    """``conn``: an owner connection to the database's server."""
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


# ---------------------------------------------------------------- the tenant's database (before it goes)

def owner_ids(conn: Connection) -> list[str]:
    """The enabled owners of the transaction's tenant (``app.tenant_id``)."""
    return [str(row["id"]) for row in conn.execute(
        "SELECT id FROM users WHERE role = 'owner' AND NOT disabled ORDER BY created_at")]


def scheduler_names(conn: Connection, tenant_id: str) -> list[str]:
    """The EventBridge Scheduler names of the tenant's content schedules (``schedules.scheduler_name``, written
    with the schedule by ``funnel.content.schedules``); none when the database has no such table (never
    migrated). The WHERE because an owner that is a superuser bypasses RLS."""
    if not fetch_one(conn.execute("SELECT to_regclass('public.schedules') IS NOT NULL AS present"))["present"]:
        return []
    return [row["scheduler_name"] for row in conn.execute(
        "SELECT scheduler_name FROM schedules WHERE tenant_id = %s AND scheduler_name IS NOT NULL "
        "ORDER BY scheduler_name", (tenant_id,))]
