"""Tenants: the directory (tenant id -> where its data lives) and provisioning.

The directory itself is ``funnel.db.directory`` (``tenant_transaction`` needs it, and db sits below the
platform); it is re-exported here as ``tenants.directory``.

Silo (default): one database per tenant. Pool: several tenants share a
database and RLS keeps them apart. One routing rule for both: the control DB's
``tenants.database_url`` says where a tenant lives, and every connection sets
``app.tenant_id`` (funnel.db.tenant_transaction).

Placement: the control DB's ``database_servers`` lists the servers tenant databases go on (capacity,
open / full / draining) and ``tenant_pools`` the pooled databases; ``place`` chooses, ``tenants.server_id``
records the choice (docs/tenant-placement.md).
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from funnel import db
from funnel.db import Row
from funnel.db import Tenant as Tenant
from funnel.db import TenantDirectory as TenantDirectory
from funnel.db import directory as directory
from funnel.platform import store_tenants
from funnel.platform.errors import Conflict, ServiceUnavailable, ValidationFailed, WorkspaceUnverified
from funnel.platform.users import create_user

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
DBNAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    return slug if len(slug) >= 2 else f"t-{uuid.uuid4().hex[:8]}"


# A pooled database takes at most this many tenants unless an operator registered it with another limit
# (docs/tenant-placement.md).
POOL_MAX_TENANTS = 1000


@dataclass(frozen=True)
class Placement:
    """Where a new tenant's data goes: a server, and the database on it (``new_pool``: a pool registered for it)."""
    server_id: str
    server_url: str
    dbname: str
    new_pool: bool = False


def place(conn: db.Connection, slug: str, pool: str | None, pooled: bool) -> Placement:
    """Choose a new tenant's place (the caller holds ``store_tenants.lock_placement``): a silo tenant gets a
    database of its own on the open server with the most room; a pooled one goes into ``pool`` when named
    (registered on the open server with the most room if it is new), or else into the oldest pooled database
    below its limit, or into a new pooled database when every one is full."""
    if not pooled:
        server = _server_with_room(conn)
        return Placement(server["id"], server["url"], "funnel_t_" + slug.replace("-", "_"))
    if pool is not None:
        found = store_tenants.pool(conn, pool)
        if found is None:
            return _new_pool(conn, pool)
        if found["server_state"] == "draining":
            raise Conflict(f"pooled database {pool} is on server {found['server_id']}, which is draining")
        if found["tenants"] >= found["max_tenants"]:
            raise Conflict(f"pooled database {pool} is full ({found['max_tenants']} tenants)")
        return Placement(found["server_id"], found["server_url"], pool)
    found = store_tenants.pool_with_room(conn)
    if found is not None:
        return Placement(found["server_id"], found["server_url"], found["database_name"])
    return _new_pool(conn, "funnel_pool_" + uuid.uuid4().hex[:12])


def _server_with_room(conn: db.Connection) -> Row:
    server = store_tenants.open_server_with_most_room(conn)
    if server is None:
        raise ServiceUnavailable("no database server has room for another database: register one "
                                 "(funnel servers add) or raise a server's capacity")
    return server


def _new_pool(conn: db.Connection, dbname: str) -> Placement:
    server = _server_with_room(conn)
    store_tenants.insert_pool(conn, dbname, server["id"], POOL_MAX_TENANTS)
    return Placement(server["id"], server["url"], dbname, new_pool=True)


def provision(name: str, owner_email: str, owner_password: str, slug: str | None = None,
              pool: str | None = None, plan: str = "free", pooled: bool = False,
              email_verified: bool = True) -> tuple[Tenant, Row]:
    """Create a tenant, migrated, with an owner: its own database (silo), or a place in a pooled one (``pool``
    names it; ``pooled`` alone lets placement choose). ``email_verified`` false (a self-service sign-up): the
    workspace sends nothing until its owner's address is verified (``require_email_verified``)."""
    # lazy: its process pool and alembic serve provisioning, not every API cold start (auth imports this module)
    from funnel.platform import migrations

    name = name.strip()
    if not name:
        raise ValidationFailed("tenant name must not be empty")
    slug = slug or slugify(name)
    if not SLUG_RE.match(slug):
        raise ValidationFailed("slug must be 2-63 characters of a-z, 0-9 and '-'")
    if pool is not None and not DBNAME_RE.match(pool):
        raise ValidationFailed("pool database name must match [a-z_][a-z0-9_]*")
    pooled = pooled or pool is not None
    tenant_id = str(uuid.uuid4())
    with db.control_admin_connect() as conn, conn.transaction():
        store_tenants.lock_placement(conn)
        placement = place(conn, slug, pool, pooled)
        database_url = migrations.server_database_url(placement.server_url, placement.dbname)
        try:
            store_tenants.insert_tenant(conn, tenant_id=tenant_id, name=name, slug=slug, database_url=database_url,
                                        isolation="pool" if pooled else "silo", plan=plan,
                                        server_id=placement.server_id, email_verified=email_verified)
        except psycopg.errors.UniqueViolation as exc:
            if "tenants_slug_key" in str(exc):
                raise Conflict(f"a tenant with slug {slug!r} exists") from exc
            raise
        store_tenants.refresh_full_servers(conn)
    created_database = False
    try:
        if pooled:
            migrations.ensure_database(placement.dbname, placement.server_url)
        else:
            if not migrations.ensure_database(placement.dbname, placement.server_url):
                raise Conflict(f"database {placement.dbname} already exists")
            created_database = True
        migrations.upgrade_tenant_database(database_url)
        owner = create_user(tenant_id, email=owner_email, password=owner_password, role="owner",
                            display_name=None, actor="system")
        with db.control_admin_connect() as conn:
            store_tenants.activate_tenant(conn, tenant_id)
    except BaseException:
        directory.forget(tenant_id)
        with db.control_admin_connect() as conn, conn.transaction():
            store_tenants.delete_tenant(conn, tenant_id)
            store_tenants.refresh_full_servers(conn)
        if created_database:
            drop_database(placement.dbname, placement.server_url)
        raise
    directory.forget(tenant_id)
    return directory.get(tenant_id), owner


def drop_database(dbname: str, server_url: str | None = None) -> None:
    """Drop a database on ``server_url`` (default: the control database's server)."""
    from funnel.platform import migrations  # lazy: see provision

    with migrations.server_admin_connect(server_url) as conn:
        store_tenants.drop_database(conn, dbname)


def delete_data(tenant: Row) -> None:
    """A tenant's data (the purge's step): a silo tenant's database is dropped; a pooled tenant's rows are deleted
    from its pool, the pool and its other tenants stay. Either can be run again."""
    from funnel.platform import migrations  # lazy: see provision

    if tenant["isolation"] == "silo":
        drop_database(db.database_name(tenant["database_url"]), db.replace_database(tenant["database_url"], ""))
    else:
        _delete_pooled_rows(migrations.owner_url(tenant["database_url"]), tenant["id"])


def _delete_pooled_rows(owner_url: str, tenant_id: str) -> None:
    """Every row of the tenant in its pooled database, in one transaction. A table whose rows others still
    reference (a foreign key without a cascade) is tried again after the others, until nothing is left."""
    with db.Connection.connect(owner_url, row_factory=dict_row) as conn, conn.transaction():
        store_tenants.set_transaction_tenant(conn, tenant_id)
        todo = store_tenants.tables_with_tenant_id(conn)
        while todo:
            blocked = []
            for table in todo:
                try:
                    with conn.transaction():
                        store_tenants.delete_tenant_rows(conn, table, tenant_id)
                except psycopg.errors.ForeignKeyViolation:
                    blocked.append(table)
            if len(blocked) == len(todo):
                raise Conflict(f"rows of {', '.join(blocked)} are referenced by rows that cannot be deleted")
            todo = blocked


def list_tenants() -> list[Row]:
    with db.control_admin_connect() as conn:
        return store_tenants.list_tenants(conn)


def active_tenant_ids() -> list[str]:
    """Every active tenant (scheduled jobs that sweep all tenants iterate this)."""
    with db.control_transaction() as conn:
        return store_tenants.active_tenant_ids(conn)


def require_email_verified(tenant_id: str) -> None:
    """The gate of everything that sends (outreach submissions, e-mail campaigns, publishing): a workspace whose
    owner has not verified their address yet is refused (403). Read from the directory entry, so a verification
    is seen at once by the process that recorded it (it forgets the entry) and within
    ``tenant_directory_ttl_seconds`` by the others."""
    if not directory.get(tenant_id).email_verified:
        raise WorkspaceUnverified("this workspace cannot send yet: verify the owner's e-mail address with the link "
                                  "mailed at sign-up (POST /v1/auth/verify-email/resend mails a new one)")
