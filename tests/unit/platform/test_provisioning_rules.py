"""``tenants.provision`` over an in-memory fake of ``store_tenants``, the databases and the owner's creation:
names, slugs and pool names are checked before anything is written, a taken slug is a Conflict, a tenant
is active only once its database is migrated and its owner exists, and a failed step removes what
provisioning made (the tenant row; a silo database it created, never a shared pool). No database."""
from __future__ import annotations

from contextlib import contextmanager

import psycopg
import pytest

from funnel import db
from funnel.db import Tenant
from funnel.platform import migrations, tenants
from funnel.platform.errors import Conflict, ValidationFailed


class FakeControl:
    """``store_tenants`` over ``rows`` (tenant id -> row), plus the databases that exist."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.databases: set[str] = {"shared_pool"}
        self.forgotten: list[str] = []

    def insert_tenant(self, conn, *, tenant_id, name, slug, database_url, isolation, plan, server_id,
                      email_verified=True):
        if any(row["slug"] == slug for row in self.rows.values()):
            raise psycopg.errors.UniqueViolation('duplicate key value violates unique constraint "tenants_slug_key"')
        self.rows[tenant_id] = {"id": tenant_id, "name": name, "slug": slug, "database_url": database_url,
                                "isolation": isolation, "plan": plan, "status": "provisioning"}

    def activate_tenant(self, conn, tenant_id):
        self.rows[tenant_id]["status"] = "active"

    def delete_tenant(self, conn, tenant_id):
        self.rows.pop(tenant_id, None)

    def drop_database(self, conn, dbname):
        self.databases.discard(dbname)

    # placement: one server with room; "shared_pool" is a registered pool below its limit
    def lock_placement(self, conn):
        pass

    def open_server_with_most_room(self, conn):
        return {"id": "primary", "url": "postgresql://127.0.0.1:5433/"}

    def pool(self, conn, name):
        return {"database_name": name, "server_id": "primary", "server_url": "postgresql://127.0.0.1:5433/",
                "server_state": "open", "tenants": 0, "max_tenants": 10} if name == "shared_pool" else None

    def refresh_full_servers(self, conn):
        pass

    # the parts of migrations and the directory provisioning uses
    def ensure_database(self, dbname, server_url=None):
        created = dbname not in self.databases
        self.databases.add(dbname)
        return created

    def get(self, tenant_id):
        row = self.rows[tenant_id]
        return Tenant(row["id"], row["name"], row["slug"], row["database_url"], row["isolation"], row["status"],
                      row["plan"], "trial")

    def forget(self, tenant_id=None):
        self.forgotten.append(tenant_id)


@pytest.fixture
def control(monkeypatch):
    fake = FakeControl()
    fake.owners = []
    fake.migration_fails = False

    class Connection:
        @contextmanager
        def transaction(self):
            yield

    @contextmanager
    def connect(*args, **kwargs):
        yield Connection()

    def upgrade(database_url):
        if fake.migration_fails:
            raise RuntimeError("migration failed")

    def create_user(tenant_id, **fields):
        fake.owners.append((tenant_id, fields["email"], fields["role"]))
        return {"id": "owner-id", "email": fields["email"], "role": fields["role"]}

    monkeypatch.setattr(db, "admin_connect", connect)
    monkeypatch.setattr(tenants, "store_tenants", fake)
    monkeypatch.setattr(tenants, "directory", fake)
    monkeypatch.setattr(tenants, "create_user", create_user)
    monkeypatch.setattr(migrations, "ensure_database", fake.ensure_database)
    monkeypatch.setattr(migrations, "upgrade_tenant_database", upgrade)
    monkeypatch.setattr(migrations, "server_admin_connect", connect)
    return fake


def test_a_provisioned_tenant_is_active_with_its_own_database_and_an_owner(control):
    tenant, owner = tenants.provision("Acme Corp", "ann@example.com", "a long password")
    assert (tenant.slug, tenant.isolation, tenant.status) == ("acme-corp", "silo", "active")
    assert tenant.database_url.endswith("/funnel_t_acme_corp") and "funnel_t_acme_corp" in control.databases
    assert control.owners == [(tenant.id, "ann@example.com", "owner")] and owner["role"] == "owner"


def test_a_pooled_tenant_shares_the_pool_database(control):
    tenant, _ = tenants.provision("Beta", "bob@example.com", "a long password", pool="shared_pool")
    assert tenant.isolation == "pool" and tenant.database_url.endswith("/shared_pool")


@pytest.mark.parametrize(("name", "options"), [
    ("   ", {}), ("Acme", {"slug": "A"}), ("Acme", {"slug": "-acme"}), ("Acme", {"pool": "Bad-Name"}),
])
def test_names_slugs_and_pool_names_are_checked_before_anything_is_written(control, name, options):
    with pytest.raises(ValidationFailed):
        tenants.provision(name, "ann@example.com", "a long password", **options)
    assert control.rows == {} and control.owners == []


def test_a_taken_slug_is_a_conflict(control):
    tenants.provision("Acme", "ann@example.com", "a long password")
    with pytest.raises(Conflict, match="slug 'acme'"):
        tenants.provision("Acme", "bob@example.com", "a long password", pool="shared_pool")
    assert len(control.rows) == 1


def test_an_existing_silo_database_is_a_conflict_and_is_left_alone(control):
    control.databases.add("funnel_t_acme")
    with pytest.raises(Conflict, match="already exists"):
        tenants.provision("Acme", "ann@example.com", "a long password")
    assert control.rows == {} and "funnel_t_acme" in control.databases


def test_a_failed_migration_removes_the_tenant_and_the_database_it_created(control):
    control.migration_fails = True
    with pytest.raises(RuntimeError):
        tenants.provision("Acme", "ann@example.com", "a long password")
    assert control.rows == {} and "funnel_t_acme" not in control.databases and control.owners == []
    assert len(control.forgotten) == 1


def test_a_failure_in_a_pool_keeps_the_shared_database(control):
    control.migration_fails = True
    with pytest.raises(RuntimeError):
        tenants.provision("Acme", "ann@example.com", "a long password", pool="shared_pool")
    assert control.rows == {} and "shared_pool" in control.databases
