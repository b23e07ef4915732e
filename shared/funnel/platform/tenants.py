"""Tenants: the directory (tenant id -> where its data lives) and provisioning.

The directory itself is ``funnel.db.directory`` (``tenant_transaction`` needs it, and db sits below the
platform); it is re-exported here as ``tenants.directory``.

Silo (default): one database per tenant. Pool: several tenants share a
database and RLS keeps them apart. One routing rule for both: the control DB's
``tenants.database_url`` says where a tenant lives, and every connection sets
``app.tenant_id`` (funnel.db.tenant_transaction).
"""
from __future__ import annotations

import re
import uuid

import psycopg

from funnel import db
from funnel.db import Row
from funnel.db import Tenant as Tenant
from funnel.db import TenantDirectory as TenantDirectory
from funnel.db import directory as directory
from funnel.platform import store_tenants
from funnel.platform.errors import Conflict, ValidationFailed
from funnel.platform.users import create_user
from funnel.settings import get_settings

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
DBNAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    return slug if len(slug) >= 2 else f"t-{uuid.uuid4().hex[:8]}"


def tenant_database_url(dbname: str) -> str:
    """Where the application reaches a tenant DB: the control DB's host, without credentials."""
    return db.replace_database(db.strip_credentials(get_settings().control_database_url), dbname)


def provision(name: str, owner_email: str, owner_password: str, slug: str | None = None,
              pool: str | None = None, plan: str = "free") -> tuple[Tenant, Row]:
    """Create a tenant (its own database, or a place in a pooled one), migrated, with an owner."""
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
    tenant_id = str(uuid.uuid4())
    dbname = pool or "funnel_t_" + slug.replace("-", "_")
    database_url = tenant_database_url(dbname)
    with db.control_admin_connect() as conn:
        try:
            store_tenants.insert_tenant(conn, tenant_id=tenant_id, name=name, slug=slug, database_url=database_url,
                                        isolation="pool" if pool else "silo", plan=plan)
        except psycopg.errors.UniqueViolation as exc:
            if "tenants_slug_key" in str(exc):
                raise Conflict(f"a tenant with slug {slug!r} exists") from exc
            raise
    created_database = False
    try:
        if pool:
            migrations.ensure_database(dbname)
        else:
            if not migrations.ensure_database(dbname):
                raise Conflict(f"database {dbname} already exists")
            created_database = True
        migrations.upgrade_tenant_database(database_url)
        owner = create_user(tenant_id, email=owner_email, password=owner_password, role="owner",
                            display_name=None, actor="system")
        with db.control_admin_connect() as conn:
            store_tenants.activate_tenant(conn, tenant_id)
    except BaseException:
        directory.forget(tenant_id)
        with db.control_admin_connect() as conn:
            store_tenants.delete_tenant(conn, tenant_id)
        if created_database:
            drop_database(dbname)
        raise
    directory.forget(tenant_id)
    return directory.get(tenant_id), owner


def drop_database(dbname: str) -> None:
    with db.admin_connect() as conn:
        store_tenants.drop_database(conn, dbname)


def list_tenants() -> list[Row]:
    with db.control_admin_connect() as conn:
        return store_tenants.list_tenants(conn)


def active_tenant_ids() -> list[str]:
    """Every active tenant (scheduled jobs that sweep all tenants iterate this)."""
    with db.control_transaction() as conn:
        return store_tenants.active_tenant_ids(conn)
