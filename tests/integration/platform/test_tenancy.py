"""Tenant provisioning, migrations and Row Level Security against a real PostgreSQL."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from funnel import db
from funnel.platform import migrations, tenants
from funnel.platform.errors import Conflict, ValidationFailed
from funnel.settings import get_settings
from tests.support.tenants import PASSWORD, new_tenant

pytestmark = pytest.mark.usefixtures("runtime")


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_control_and_tenant_migrations_go_down_and_up_again():
    scratch = f"scratch_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(scratch)
    url = db.admin_url(scratch)
    for env, target in (("control", "head"), ("tenant", "heads")):
        migrations.run(env, url, "upgrade", target)
        assert "alembic_version" in _tables(url) and len(_tables(url)) > 3
        migrations.run(env, url, "downgrade", "base")
        assert _tables(url) == {"alembic_version"}
        migrations.run(env, url, "upgrade", target)
        migrations.run(env, url, "downgrade", "base")
    tenants.drop_database(scratch)


def test_silo_tenant_gets_its_own_migrated_database_and_owner():
    handle = new_tenant()
    tenant = tenants.directory.get(handle.tenant_id)
    assert tenant.isolation == "silo" and tenant.status == "active"
    assert db.database_name(tenant.database_url) == "funnel_t_" + handle.slug.replace("-", "_")
    assert {"users", "api_keys", "audit_logs", "runs", "steps", "artifacts", "prompts"} <= _tables(
        db.admin_url(db.database_name(tenant.database_url)))
    with db.tenant_transaction(handle.tenant_id) as conn:
        owner = conn.execute("SELECT role, password_hash FROM users").fetchone()
    assert owner["role"] == "owner" and owner["password_hash"].startswith("$argon2id$")


def test_duplicate_slug_is_refused_and_leaves_nothing_behind():
    handle = new_tenant()
    before = len(tenants.list_tenants())
    with pytest.raises(Conflict):
        tenants.provision("Again", "again@example.com", PASSWORD, slug=handle.slug)
    with pytest.raises(ValidationFailed):
        tenants.provision("Bad", "bad@example.com", PASSWORD, slug="Not A Slug")
    assert len(tenants.list_tenants()) == before


def test_failed_provisioning_rolls_back_tenant_row_and_database():
    slug = f"t-{uuid.uuid4().hex[:8]}"
    before = len(tenants.list_tenants())
    with pytest.raises(ValidationFailed):  # password too short: fails after the database exists
        tenants.provision("Short password", "short@example.com", "short", slug=slug)
    assert len(tenants.list_tenants()) == before
    with db.admin_connect() as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            ("funnel_t_" + slug.replace("-", "_"),)).fetchone() is None


def test_pooled_tenants_cannot_see_each_other_even_without_where_clause():
    pool = f"pool_{uuid.uuid4().hex[:6]}"
    first, second = new_tenant(pool=pool), new_tenant(pool=pool)
    assert tenants.directory.get(first.tenant_id).database_url == tenants.directory.get(second.tenant_id).database_url
    with db.tenant_transaction(first.tenant_id) as conn:
        conn.execute("INSERT INTO prompts (step, version, content) VALUES ('x', 1, 'first only')")
        rows = conn.execute("SELECT tenant_id FROM users").fetchall()  # no WHERE on purpose
        assert {r["tenant_id"] for r in rows} == {first.tenant_id}
    with db.tenant_transaction(second.tenant_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM prompts").fetchone()["n"] == 0
        assert conn.execute("SELECT count(*) AS n FROM users").fetchone()["n"] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # WITH CHECK: no writing into the other tenant
            conn.execute("INSERT INTO prompts (tenant_id, step, version, content) VALUES (%s, 'x', 2, 'sneaky')",
                         (first.tenant_id,))


def test_without_tenant_context_the_application_role_sees_nothing():
    handle = new_tenant()
    tenant = tenants.directory.get(handle.tenant_id)
    with psycopg.connect(db.app_url(tenant.database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        role = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        assert role == (False, False)
        owners = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                              "AND tableowner = current_user").fetchone()[0]
        assert owners == 0
    assert get_settings().app_db_role in db.app_url(tenant.database_url)


def test_migrate_all_reports_a_broken_tenant_and_migrates_the_others():
    healthy, broken = new_tenant(), new_tenant()
    tenants.drop_database(db.database_name(tenants.directory.get(broken.tenant_id).database_url))
    results = migrations.migrate_all(workers=2)
    by_slug = {slug: r for r in results for slug in r.tenant_slugs}
    assert by_slug[healthy.slug].ok
    assert not by_slug[broken.slug].ok and "does not exist" in by_slug[broken.slug].error
    with db.admin_connect(db.database_name(get_settings().control_database_url)) as conn:
        conn.execute("UPDATE tenants SET status = 'deleted' WHERE id = %s", (broken.tenant_id,))
    tenants.directory.forget(broken.tenant_id)
