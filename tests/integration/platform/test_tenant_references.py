"""References between tenant tables carry the tenant (migrations t0002_platform and the areas' revisions
after it): the database itself refuses a reference into another tenant's row, also in a pooled database
where PostgreSQL checks foreign keys without row-level security."""
from __future__ import annotations

import asyncio
import importlib
import json
import uuid
from pathlib import Path

import psycopg
import pytest
from starlette.requests import Request

from funnel import db
from funnel.api import problems
from funnel.platform import migrations, tenants

pytestmark = pytest.mark.usefixtures("runtime")

# The heads before references carried the tenant: a database migrated then must upgrade (`funnel migrate`).
HEADS_BEFORE = ("t0001_platform", "t0001_outreach", "t0001_content", "t0003_email", "t0002_notifications")
# The community branch was written after the rule: each of its revisions lists the tables it creates (TABLES).
COMMUNITY_REVISIONS = sorted(path.stem for path in Path(importlib.import_module(
    "funnel.migrations.tenant.versions").__path__[0]).glob("community_*.py"))
BORN_COMPOSITE_TABLES = {table for revision in COMMUNITY_REVISIONS for table in getattr(
    importlib.import_module(f"funnel.migrations.tenant.versions.{revision}"), "TABLES", ())}


def _composite_foreign_keys(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    rows = conn.execute("""
        SELECT conrelid::regclass::text || '.' || conname AS name,
               (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(num, ord)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num) AS columns
        FROM pg_constraint c WHERE contype = 'f' AND connamespace = 'public'::regnamespace
        -- a reference to one of the product's global dictionaries (funnel_stages) is not between tenants' rows
          AND EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.confrelid AND t.attname = 'tenant_id')"""
                        ).fetchall()
    composite = [name for name, columns in rows if columns[0] == "tenant_id" and len(columns) == 2]
    single = [name for name, columns in rows if "tenant_id" not in columns]
    return composite, single


def test_every_reference_between_tenant_tables_carries_the_tenant_and_migrations_go_both_ways():
    scratch = f"scratch_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(scratch)
    url = db.admin_url(scratch)
    try:
        migrations.run("tenant", url, "upgrade", "heads")
        with psycopg.connect(url) as conn:
            composite, single = _composite_foreign_keys(conn)
            # ON DELETE SET NULL (col): a neighbour's delete could never null tenant_id (nor anything else)
            set_null = conn.execute("SELECT conname, confdelsetcols, conkey FROM pg_constraint "
                                    "WHERE contype = 'f' AND confdeltype = 'n'").fetchall()
        assert len(set_null) > 10 and all(len(cols) == 1 and cols[0] == key[1] for _, cols, key in set_null)
        assert single == []  # a new reference between tenant tables must carry the tenant too (README)
        assert {"email_messages.email_messages_contact_id_fkey", "notifications.notifications_recipient_id_fkey",
                "notification_channels.notification_channels_user_id_fkey"} < set(composite)
        for target in HEADS_BEFORE[1:] + HEADS_BEFORE[:1]:  # down to the old heads (dependents first) ...
            migrations.run("tenant", url, "downgrade", target)
        with psycopg.connect(url) as conn:
            downgraded, single = _composite_foreign_keys(conn)
            # branches born with tenant keys (community) depend on t0002_platform and are gone with it
            before = [name for name in composite if name.split(".")[0] not in BORN_COMPOSITE_TABLES]
            assert downgraded == [] and sorted(single) == sorted(before)
        migrations.run("tenant", url, "upgrade", "heads")  # ... and up again
        with psycopg.connect(url) as conn:
            assert sorted(_composite_foreign_keys(conn)[0]) == sorted(composite)
    finally:
        tenants.drop_database(scratch)


def _problem(exc: Exception, method: str):
    """The API's answer to ``exc`` raised by a request's transaction."""
    request = Request({"type": "http", "method": method, "path": "/v1/x", "headers": [], "query_string": b""})
    return asyncio.run(problems.foreign_key_violation_handler(request, exc))


def test_upgrading_a_pooled_database_cleans_references_into_another_tenant_and_the_api_names_a_broken_key():
    scratch = f"scratch_{uuid.uuid4().hex[:8]}"
    migrations.ensure_database(scratch)
    url = db.admin_url(scratch)
    try:
        for head in HEADS_BEFORE:
            migrations.run("tenant", url, "upgrade", head)
        with psycopg.connect(url, autocommit=True) as conn:  # the owner role: written as the old keys allowed
            def insert(sql: str, *params: object) -> str:
                return str(conn.execute(sql + " RETURNING id", params).fetchone()[0])
            user_a = insert("INSERT INTO users (tenant_id, email) VALUES ('a', 'a@example.com')")
            user_b = insert("INSERT INTO users (tenant_id, email) VALUES ('b', 'b@example.com')")
            contact_a = insert("INSERT INTO contacts (tenant_id, company_name) VALUES ('a', 'A Co')")
            campaign_b = insert("INSERT INTO email_campaigns (tenant_id, name, subject, body, from_name, "
                                "from_address, sender_identity) VALUES ('b', 'n', 's', 'b', 'f', 'f@x.jp', 'f@x.jp')")
            stray_message = insert("INSERT INTO email_messages (tenant_id, campaign_id, contact_id, email) "
                                   "VALUES ('b', %s, %s, 'x@example.com')", campaign_b, contact_a)
            own_notification = insert("INSERT INTO notifications (tenant_id, notification_id, recipient_id) "
                                      "VALUES ('b', 'ntf_1', %s)", user_b)
            insert("INSERT INTO notifications (tenant_id, notification_id, recipient_id) VALUES ('b', 'ntf_2', %s)",
                   user_a)
            insert("INSERT INTO notification_channels (tenant_id, kind, user_id, url_encrypted) "
                   "VALUES ('b', 'SLACK', %s, 'x')", user_a)
        migrations.run("tenant", url, "upgrade", "heads")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT contact_id FROM email_messages WHERE id = %s",
                                (stray_message,)).fetchone() == (None,)
            assert [str(r[0]) for r in conn.execute("SELECT id FROM notifications")] == [own_notification]
            assert conn.execute("SELECT count(*) FROM notification_channels").fetchone() == (0,)
            assert conn.execute("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'email_messages'"
                                ).fetchone() == (True,)
            with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused:
                conn.execute("INSERT INTO email_messages (tenant_id, campaign_id, contact_id, email) "
                             "VALUES ('b', %s, %s, 'y@example.com')", (campaign_b, contact_a))
            conn.rollback()
            with pytest.raises(psycopg.errors.ForeignKeyViolation) as still_needed:  # ON DELETE RESTRICT
                conn.execute("DELETE FROM users WHERE id = %s", (user_b,))
        insert_answer = _problem(refused.value, "POST")
        assert insert_answer.status_code == 422 and json.loads(insert_answer.body)["errors"] == [
            {"loc": ["body", "contact_id"], "msg": "not found in this workspace", "type": "reference"}]
        assert _problem(still_needed.value, "POST").status_code == 409
    finally:
        tenants.drop_database(scratch)
