"""The control DB's tenant data: every SQL statement over ``tenants``, ``login_directory``,
``api_key_prefixes`` and where tenants are placed (``database_servers``, ``tenant_pools``), as small named
functions; and the statements provisioning and moving run on a tenant database itself.

These are the lookups that find a tenant before any of its data is read (an e-mail's workspaces at sign-in,
an API key's tenant), and the tenant rows provisioning writes. The rules (slugs, statuses, which workspace
a login means) stay in ``tenants`` and ``auth``. ``funnel.db.TenantDirectory`` reads a tenant's row itself
(``tenant_transaction`` needs it, and db sits below the platform).
"""
from __future__ import annotations

from psycopg import sql

from funnel.db import Connection, Row, fetch_one

TENANT_COLUMNS = "id, name, slug, isolation, status, plan, database_url, server_id, created_at"


# ---------------------------------------------------------------- tenants

def insert_tenant(conn: Connection, *, tenant_id: str, name: str, slug: str, database_url: str, isolation: str,
                  plan: str, server_id: str, email_verified: bool = True) -> None:
    """A new tenant, ``provisioning`` (the column's default) until ``activate_tenant``; a taken slug raises
    psycopg's UniqueViolation on ``tenants_slug_key``. ``email_verified``: verified from the start (an operator's
    workspace) or not until ``mark_email_verified`` (a self-service sign-up's)."""
    conn.execute("INSERT INTO tenants (id, name, slug, database_url, isolation, plan, server_id, email_verified_at) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)",
                 (tenant_id, name, slug, database_url, isolation, plan, server_id, email_verified))


def activate_tenant(conn: Connection, tenant_id: str) -> None:
    conn.execute("UPDATE tenants SET status = 'active', updated_at = now() WHERE id = %s", (tenant_id,))


def delete_tenant(conn: Connection, tenant_id: str) -> None:
    """Remove the row of a tenant whose provisioning failed."""
    conn.execute("DELETE FROM tenants WHERE id = %s", (tenant_id,))


def list_tenants(conn: Connection) -> list[Row]:
    """Every tenant (``TENANT_COLUMNS``), oldest first."""
    return conn.execute(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY created_at").fetchall()


def tenant_by_slug(conn: Connection, slug: str) -> Row | None:
    """A tenant that is not deleted (``TENANT_COLUMNS``), or None."""
    return conn.execute(f"SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = %s AND status <> 'deleted'",
                        (slug,)).fetchone()


def mark_deleted(conn: Connection, tenant_id: str) -> None:
    """The tenant is gone: the directory, sign-in and API keys no longer find it (its row stays, for billing)."""
    conn.execute("UPDATE tenants SET status = 'deleted', updated_at = now() WHERE id = %s", (tenant_id,))


def tenant_databases(conn: Connection) -> list[Row]:
    """Every database holding a tenant that is not deleted: ``database_url, server_id, slugs`` (by first slug)."""
    return conn.execute(
        "SELECT database_url, min(server_id) AS server_id, array_agg(slug ORDER BY slug) AS slugs FROM tenants "
        "WHERE status <> 'deleted' GROUP BY database_url ORDER BY min(slug)").fetchall()


def switch_server(conn: Connection, tenant_id: str, server_id: str, database_url: str) -> None:
    """The tenant now lives on ``server_id`` at ``database_url`` (one statement: the directory never sees half)."""
    conn.execute("UPDATE tenants SET server_id = %s, database_url = %s, updated_at = now() WHERE id = %s",
                 (server_id, database_url, tenant_id))


def active_tenant_ids(conn: Connection) -> list[str]:
    """The ids of the active tenants, oldest first."""
    return [row["id"] for row in conn.execute("SELECT id FROM tenants WHERE status = 'active' ORDER BY created_at")]


def drop_database(conn: Connection, dbname: str) -> None:
    """Drop a tenant database (``conn``: an autocommit owner connection), disconnecting its sessions."""
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


# ---------------------------------------------------------------- placement: servers and pools

# A database on a server: a silo tenant's own, or a pooled database (however many tenants it holds).
_SERVER_USAGE = """
    SELECT s.id, s.url, s.capacity, s.state,
           (SELECT count(*) FROM tenants t WHERE t.server_id = s.id AND t.isolation = 'silo'
                AND t.status <> 'deleted')
         + (SELECT count(*) FROM tenant_pools p WHERE p.server_id = s.id) AS databases
    FROM database_servers s"""


def lock_placement(conn: Connection) -> None:
    """Serialise placement until the transaction ends, so two sign-ups cannot both take a server's last room."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('funnel.tenant_placement'))")


def servers(conn: Connection) -> list[Row]:
    """Every server with ``databases`` (how many it holds), by id."""
    return conn.execute(f"{_SERVER_USAGE} ORDER BY s.id").fetchall()


def server(conn: Connection, server_id: str) -> Row | None:
    return conn.execute(f"{_SERVER_USAGE} WHERE s.id = %s", (server_id,)).fetchone()


def open_server_with_most_room(conn: Connection) -> Row | None:
    """The open server with the most databases left below its capacity (ties: by id), or None."""
    return conn.execute(f"SELECT * FROM ({_SERVER_USAGE}) u WHERE state = 'open' AND databases < capacity "
                        "ORDER BY capacity - databases DESC, id LIMIT 1").fetchone()


def insert_server(conn: Connection, server_id: str, url: str, capacity: int) -> None:
    conn.execute("INSERT INTO database_servers (id, url, capacity) VALUES (%s, %s, %s)", (server_id, url, capacity))


def update_server(conn: Connection, server_id: str, *, state: str | None = None, capacity: int | None = None) -> None:
    conn.execute("UPDATE database_servers SET state = coalesce(%s, state), capacity = coalesce(%s, capacity), "
                 "updated_at = now() WHERE id = %s", (state, capacity, server_id))


def refresh_full_servers(conn: Connection) -> None:
    """``full`` where an open server reached its capacity, ``open`` again where a full one has room; a draining
    server stays draining."""
    conn.execute(f"UPDATE database_servers s SET state = CASE WHEN u.databases >= u.capacity THEN 'full' "
                 f"ELSE 'open' END, updated_at = now() FROM ({_SERVER_USAGE}) u "
                 "WHERE u.id = s.id AND s.state IN ('open', 'full') "
                 "AND s.state <> CASE WHEN u.databases >= u.capacity THEN 'full' ELSE 'open' END")


_POOL_USAGE = """
    SELECT p.database_name, p.server_id, p.max_tenants, s.url AS server_url, s.state AS server_state,
           (SELECT count(*) FROM tenants t WHERE t.isolation = 'pool' AND t.status <> 'deleted'
                AND t.server_id = p.server_id
                AND substring(t.database_url from '^[^?]*/([^/?]+)') = p.database_name) AS tenants
    FROM tenant_pools p JOIN database_servers s ON s.id = p.server_id"""


def pool(conn: Connection, database_name: str) -> Row | None:
    """A pooled database with ``tenants`` (how many it holds) and its server's ``server_url``, or None."""
    return conn.execute(f"{_POOL_USAGE} WHERE p.database_name = %s", (database_name,)).fetchone()


def pool_with_room(conn: Connection) -> Row | None:
    """The oldest pooled database below its limit on a server that is not draining (pools fill in turn), or
    None."""
    return conn.execute(f"SELECT * FROM ({_POOL_USAGE}) u WHERE server_state <> 'draining' AND tenants < max_tenants "
                        "ORDER BY (SELECT created_at FROM tenant_pools WHERE database_name = u.database_name), "
                        "database_name LIMIT 1").fetchone()


def insert_pool(conn: Connection, database_name: str, server_id: str, max_tenants: int) -> None:
    conn.execute("INSERT INTO tenant_pools (database_name, server_id, max_tenants) VALUES (%s, %s, %s)",
                 (database_name, server_id, max_tenants))


# ---------------------------------------------------------------- on a tenant database (owner role)

def set_database_read_only(conn: Connection, dbname: str, read_only: bool) -> None:
    """New sessions of ``dbname`` start read-only (a moving tenant's writes are refused), or no longer."""
    statement = "ALTER DATABASE {} SET default_transaction_read_only = on" if read_only else \
        "ALTER DATABASE {} RESET default_transaction_read_only"
    conn.execute(sql.SQL(statement).format(sql.Identifier(dbname)))


def forced_rls_tables(conn: Connection) -> list[str]:
    """The tables of the public schema whose row-level security binds their owner too (FORCE)."""
    return [row["relname"] for row in conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' "
        "AND relforcerowsecurity ORDER BY relname")]


def set_forced_rls(conn: Connection, tables: list[str], forced: bool) -> None:
    """FORCE (or NO FORCE) row-level security on ``tables``; this session may write whatever the database's
    default (a moving database is read-only for every other session)."""
    conn.execute("SET default_transaction_read_only = off")
    statement = "ALTER TABLE {} FORCE ROW LEVEL SECURITY" if forced else "ALTER TABLE {} NO FORCE ROW LEVEL SECURITY"
    for table in tables:
        conn.execute(sql.SQL(statement).format(sql.Identifier(table)))


def terminate_sessions(conn: Connection, dbname: str) -> int:
    """End every other session on ``dbname`` (its next ones start with the database's new settings)."""
    return len(conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchall())


def table_row_counts(conn: Connection) -> dict[str, int]:
    """Rows per table of the public schema, as this connection sees them (RLS applies)."""
    tables = [row["tablename"] for row in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
    return {table: fetch_one(conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))))["n"]
            for table in tables}


def tables_with_tenant_id(conn: Connection) -> list[str]:
    return [row["table_name"] for row in conn.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id' "
        "ORDER BY table_name")]


def delete_tenant_rows(conn: Connection, table: str, tenant_id: str) -> int:
    """Delete the tenant's rows of ``table`` (the WHERE because a superuser bypasses RLS; the transaction's
    ``app.tenant_id`` because the forced RLS binds an owner that is not one)."""
    return conn.execute(sql.SQL("DELETE FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)),
                        (tenant_id,)).rowcount


def set_transaction_tenant(conn: Connection, tenant_id: str) -> None:
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))


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


# ---------------------------------------------------------------- sign-up: slugs and e-mail verification

def slug_taken(conn: Connection, slug: str) -> bool:
    """Whether a tenant has ``slug``, deleted ones included (``tenants_slug_key`` keeps their slugs too)."""
    return conn.execute("SELECT 1 FROM tenants WHERE slug = %s", (slug,)).fetchone() is not None


def mark_email_verified(conn: Connection, tenant_id: str) -> Row | None:
    """The tenant's owner proved their address (the first time counts): ``id, slug, name, email_verified_at``, or
    None when the tenant is deleted or unknown."""
    return conn.execute(
        "UPDATE tenants SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() "
        "WHERE id = %s AND status <> 'deleted' RETURNING id, slug, name, email_verified_at", (tenant_id,)).fetchone()
