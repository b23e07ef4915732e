"""Workspace deletion (issue #18 item 6) through the real app against PostgreSQL, moto (S3, EventBridge Scheduler,
SQS, SES) and the local Stripe server:

- only a signed-in owner schedules or cancels it, with the workspace's slug and their current password as the
  confirmation; a second request while one is scheduled is a 409; cancelled, it can be scheduled again; every owner
  is told in-app and by e-mail, and each change is audited;
- once due, the purge (the operations function's hourly ``purge_due_deletions``) leaves nothing of the tenant: no
  row with its id in any control table, no database, no S3 object (any version) under its prefixes, no schedule,
  its Stripe subscription canceled; a purge stopped half way is finished by ``funnel tenants delete SLUG --yes``,
  and the tenant's pooled neighbour keeps its rows, objects and sign-in.

Each client has an address of its own, so the wrong passwords of one test do not fill another's sign-in window.
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from funnel import cli, db
from funnel.platform import account_tokens, auth, deletion, migrations, storage, store_deletion, tenants, users
from funnel.platform.errors import Unauthorized
from funnel.platform.secrets import reset_clients
from funnel.settings import get_settings, reset_settings
from tests.support.cli import printed_json
from tests.support.stripe_server import StripeServer
from tests.support.tenants import PASSWORD, TenantHandle, new_pooled_tenant, new_tenant, row_count
from tests.support.waiting import wait_until

FUNCTION = "PlatformOperationsFunction"


@pytest.fixture(scope="module")
def stripe_server(runtime):
    """The local Stripe server, with the deployment's Stripe key and API base pointing at it."""
    server = StripeServer().start()
    runtime.client("secretsmanager").put_secret_value(
        SecretId=get_settings().stripe_secret_id,
        SecretString=json.dumps({"api_key": server.api_key, "webhook_secret": "whsec_test_deletion"}))
    reset_clients()
    previous = os.environ.get("FUNNEL_STRIPE_API_BASE")
    os.environ["FUNNEL_STRIPE_API_BASE"] = server.url
    reset_settings()
    yield server
    if previous is None:
        os.environ.pop("FUNNEL_STRIPE_API_BASE")
    else:
        os.environ["FUNNEL_STRIPE_API_BASE"] = previous
    reset_settings()
    server.stop()


def _schedule(client: TestClient, tenant: TenantHandle, **body):
    return client.post("/v1/workspace/deletion", headers=tenant.headers,
                       json={"confirm": tenant.slug, "password": PASSWORD} | body)


def _due_now(tenant_id: str) -> None:
    """The grace period is over (as it is 14 days later)."""
    with db.control_admin_connect() as conn:
        conn.execute("UPDATE tenants SET deletion_due_at = now() - interval '1 minute' WHERE id = %s", (tenant_id,))


def _signed_in_as(tenant: TenantHandle, role: str, client: TestClient) -> dict[str, str]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    users.create_user(tenant.tenant_id, email=email, password=PASSWORD, role=role, display_name=None, actor="system")
    tokens = auth.login(email, PASSWORD, tenant.slug, "127.0.0.1")
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _workspace_notifications(tenant: TenantHandle) -> list[dict]:
    with db.tenant_transaction(tenant.tenant_id) as conn:
        return conn.execute("SELECT recipient_id::text AS recipient, delivery_method, delivery_status, title "
                            "FROM notifications WHERE notification_category = 'workspace' "
                            "ORDER BY created_at, delivery_method").fetchall()


def _control_rows_of(tenant_id: str) -> dict[str, int]:
    """Rows naming the tenant in any control table: every table with a ``tenant_id`` column, and ``tenants``."""
    with db.control_admin_connect() as conn:
        tables = [row["table_name"] for row in conn.execute(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'")]
        counts = {table: conn.execute(f"SELECT count(*) AS n FROM {table} WHERE tenant_id = %s",
                                      (tenant_id,)).fetchone()["n"] for table in tables}
        counts["tenants"] = conn.execute("SELECT count(*) AS n FROM tenants WHERE id = %s",
                                         (tenant_id,)).fetchone()["n"]
    assert {"login_directory", "api_key_prefixes", "refresh_token_families", "account_tokens",
            "shortlink_routes"} <= set(counts), counts
    return {table: n for table, n in counts.items() if n}


def _objects_of(tenant_id: str) -> list[str]:
    """Every object version and delete marker of the artifacts bucket under ``<kind>/<tenant id>/``."""
    s3, keys = storage.s3(), []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=get_settings().artifacts_bucket):
        keys += [v["Key"] for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                 if v["Key"].split("/")[1:2] == [tenant_id]]
    return keys


def _put_objects(tenant_id: str) -> None:
    """One object of each kind the product writes for a tenant (run files, imports, attachments, exports)."""
    for key in (f"storage/{tenant_id}/run/step/output.json", f"imports/{tenant_id}/job.csv",
                f"attachments/{tenant_id}/campaign/a/file.pdf", f"exports/{tenant_id}/run.tar.gz"):
        storage.put_bytes(key, b"data", "application/octet-stream")


def _content_schedule(client: TestClient, tenant: TenantHandle) -> str:
    """A content schedule through the API (its EventBridge schedule is created with it): its scheduler name."""
    suffix = uuid.uuid4().hex[:8]

    def created(path: str, body: dict) -> dict:
        response = client.post(path, headers=tenant.headers, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    site = created("/v1/sites", {"slug": f"blog-{suffix}", "wp_admin_url": "http://127.0.0.1:9/"})
    product = created("/v1/products", {"url": f"http://127.0.0.1:9/p-{suffix}", "site_id": site["id"]})
    schedule = created("/v1/schedules", {"site_id": site["id"], "product_id": product["id"],
                                         "cron_expression": "0 9 * * 1"})
    return f"content-{schedule['id']}"


def _schedule_exists(runtime, name: str) -> bool:
    scheduler = runtime.client("scheduler")
    try:
        scheduler.get_schedule(Name=name, GroupName=get_settings().scheduler_group)
    except scheduler.exceptions.ResourceNotFoundException:
        return False
    return True


def _database_exists(database_url: str) -> bool:
    with db.admin_connect() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (db.database_name(database_url),)).fetchone() is not None


def _signs_in(tenant: TenantHandle) -> bool:
    try:
        auth.login(tenant.owner_email, PASSWORD, tenant.slug, "127.0.0.1")
    except Unauthorized:
        return False
    return True


# ---------------------------------------------------------------- scheduling and cancelling

def test_an_owner_schedules_cancels_and_schedules_again_and_every_owner_is_told(client):
    tenant = new_pooled_tenant()
    other_owner = _signed_in_as(tenant, "owner", client)
    workspace = client.get("/v1/workspace", headers=tenant.headers)
    assert workspace.status_code == 200
    assert workspace.json() | {"id": None} == {"id": None, "slug": tenant.slug, "name": workspace.json()["name"],
                                               "isolation": "pool", "plan": "free", "email_verified": True,
                                               "deletion": None}

    scheduled = _schedule(client, tenant)
    assert scheduled.status_code == 202, scheduled.text
    deletion = scheduled.json()["deletion"]
    due = datetime.fromisoformat(deletion["due_at"])
    assert deletion["requested_by"] == tenant.owner_id
    assert abs(due - datetime.now(UTC) - timedelta(days=get_settings().workspace_deletion_grace_days)) < \
        timedelta(minutes=1)
    assert client.get("/v1/workspace", headers=other_owner).json()["deletion"] == deletion
    again = _schedule(client, tenant)
    assert again.status_code == 409 and "already scheduled" in again.json()["detail"]
    assert client.get("/v1/me", headers=tenant.headers).status_code == 200  # it works as before meanwhile

    cancelled = client.delete("/v1/workspace/deletion", headers=other_owner)
    assert cancelled.status_code == 200 and cancelled.json()["deletion"] is None
    assert client.delete("/v1/workspace/deletion", headers=other_owner).status_code == 404
    assert client.get("/v1/workspace", headers=tenant.headers).json()["deletion"] is None
    rescheduled = _schedule(client, tenant)
    assert rescheduled.status_code == 202 and rescheduled.json()["deletion"]["due_at"] >= deletion["due_at"]
    assert client.delete("/v1/workspace/deletion", headers=tenant.headers).status_code == 200

    audited = client.get("/v1/audit-logs", headers=tenant.headers, params={"resource_type": "workspace"}).json()
    assert sorted(entry["action"] for entry in audited["items"]) == [
        "workspace.deletion_cancelled", "workspace.deletion_cancelled", "workspace.deletion_scheduled",
        "workspace.deletion_scheduled"]
    # each of the four changes told both owners, in-app and by e-mail (delivered through SES)
    told = wait_until(lambda: _workspace_notifications(tenant),
                      lambda rows: len(rows) == 16 and all(r["delivery_status"] == "DELIVERED" for r in rows),
                      30, "the owners' workspace notifications delivered")
    assert {(r["recipient"], r["delivery_method"]) for r in told} == {
        (owner, method) for owner in (tenant.owner_id, _user_id(tenant, other_owner, client))
        for method in ("IN_APP", "EMAIL")}
    assert any(r["title"].startswith("The deletion of workspace") for r in told)


def _user_id(tenant: TenantHandle, headers: dict[str, str], client: TestClient) -> str:
    return client.get("/v1/me", headers=headers).json()["id"]


def test_the_confirmation_is_the_slug_and_the_current_password(client):
    tenant = new_pooled_tenant()
    cases = [({"confirm": "not-the-slug"}, ["body", "confirm"]), ({"password": None}, ["body", "password"]),
             ({"password": "not the password at all"}, ["body", "password"])]
    for body, loc in cases:
        answer = _schedule(client, tenant, **body)
        assert answer.status_code == 422, answer.text
        assert [error["loc"] for error in answer.json()["errors"]] == [loc]
    unknown_field = _schedule(client, tenant, force=True)
    assert unknown_field.status_code == 422
    assert client.get("/v1/workspace", headers=tenant.headers).json()["deletion"] is None
    # the wrong password counted against the account's sign-in window, as a wrong sign-in does
    with db.control_transaction() as conn:
        counted = conn.execute("SELECT sum(count) AS n FROM rate_limit_windows WHERE key = %s",
                               (f"login:account:{tenant.owner_email}",)).fetchone()["n"]
    assert counted == 1


def test_only_a_signed_in_owner_schedules_or_cancels(client):
    tenant = new_pooled_tenant()
    key = client.post("/v1/api-keys", headers=tenant.headers, json={"name": "ops", "scope": "admin"}).json()["key"]
    callers = {"admin": _signed_in_as(tenant, "admin", client), "viewer": _signed_in_as(tenant, "viewer", client),
               "api key": {"X-Api-Key": key}}
    for who, headers in callers.items():
        assert client.get("/v1/workspace", headers=headers).status_code == 200, who
        refused = client.post("/v1/workspace/deletion", headers=headers,
                              json={"confirm": tenant.slug, "password": PASSWORD})
        assert refused.status_code == 403, (who, refused.text)
        assert client.delete("/v1/workspace/deletion", headers=headers).status_code == 403, who
    assert client.get("/v1/workspace", headers=tenant.headers).json()["deletion"] is None


# ---------------------------------------------------------------- the purge

@pytest.fixture
def versioned_bucket(runtime, monkeypatch):
    """The artifacts bucket as deployed (versioning on, so overwritten and deleted objects keep versions)."""
    name = f"funnel-deletion-{uuid.uuid4().hex[:8]}"
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.setenv("FUNNEL_ARTIFACTS_BUCKET", name)
    reset_settings()
    yield name
    monkeypatch.undo()
    reset_settings()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=name, Key=version["Key"], VersionId=version["VersionId"])
    s3.delete_bucket(Bucket=name)


def test_the_purge_when_due_leaves_nothing_of_a_silo_tenant(runtime, client, stripe_server, versioned_bucket):
    tenant = new_tenant()
    database_url = tenants.directory.get(tenant.tenant_id).database_url
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    subscription = stripe_server.add_subscription(customer)
    with db.control_admin_connect() as conn:
        conn.execute("UPDATE tenants SET stripe_customer_id = %s, stripe_subscription_id = %s, "
                     "subscription_status = 'active' WHERE id = %s", (customer, subscription["id"], tenant.tenant_id))
        conn.execute("INSERT INTO shortlink_routes (host, key, tenant_id, shortlink_id) VALUES ('', %s, %s, %s)",
                     (f"k-{uuid.uuid4().hex[:10]}", tenant.tenant_id, str(uuid.uuid4())))
    account_tokens.issue("password_reset", tenant.tenant_id, tenant.owner_id, 900)
    assert client.post("/v1/api-keys", headers=tenant.headers, json={"name": "k"}).status_code == 201
    schedule_name = _content_schedule(client, tenant)
    _put_objects(tenant.tenant_id)
    s3 = storage.s3()
    s3.put_object(Bucket=versioned_bucket, Key=f"imports/{tenant.tenant_id}/job.csv", Body=b"second version")
    s3.delete_object(Bucket=versioned_bucket, Key=f"exports/{tenant.tenant_id}/run.tar.gz")  # a delete marker
    assert _schedule_exists(runtime, schedule_name) and len(_objects_of(tenant.tenant_id)) == 6
    assert set(_control_rows_of(tenant.tenant_id)) >= {"tenants", "login_directory", "api_key_prefixes",
                                                       "refresh_token_families", "account_tokens", "shortlink_routes"}
    assert _schedule(client, tenant).status_code == 202
    wait_until(lambda: _workspace_notifications(tenant), lambda rows: rows and all(
        r["delivery_status"] == "DELIVERED" for r in rows), 30, "the deletion notices delivered")

    not_yet = runtime.invoke(FUNCTION, {"action": "purge_due_deletions"})
    assert not_yet["ok"] and tenant.slug not in {t["slug"] for t in not_yet["tenants"]}
    _due_now(tenant.tenant_id)
    report = runtime.invoke(FUNCTION, {"action": "purge_due_deletions"})
    assert report["ok"], report["error"]
    assert [(t["slug"], t["status"]) for t in report["tenants"] if t["id"] == tenant.tenant_id] == [
        (tenant.slug, "deleted")]

    assert _control_rows_of(tenant.tenant_id) == {}
    assert not _database_exists(database_url)
    assert _objects_of(tenant.tenant_id) == []
    assert not _schedule_exists(runtime, schedule_name)
    assert stripe_server.subscriptions[subscription["id"]]["status"] == "canceled"
    assert not _signs_in(tenant)
    assert client.get("/v1/workspace", headers=tenant.headers).status_code == 401
    again = runtime.invoke(FUNCTION, {"action": "purge_due_deletions"})
    assert again["ok"] and tenant.tenant_id not in {t["id"] for t in again["tenants"]}


def test_a_purge_stopped_half_way_is_finished_by_the_operator_and_spares_the_pooled_neighbour(
        runtime, client, stripe_server, monkeypatch, capsys):
    victim, neighbour = new_pooled_tenant(), new_pooled_tenant()
    pool_url = tenants.directory.get(victim.tenant_id).database_url
    assert tenants.directory.get(neighbour.tenant_id).database_url == pool_url
    for tenant in (victim, neighbour):
        _put_objects(tenant.tenant_id)
        with db.tenant_transaction(tenant.tenant_id) as conn:
            conn.execute("INSERT INTO prompts (step, version, content) VALUES ('x', 1, 'mine')")
    subscription = stripe_server.add_subscription(f"cus_{uuid.uuid4().hex[:14]}")
    with db.control_admin_connect() as conn:
        conn.execute("UPDATE tenants SET stripe_subscription_id = %s WHERE id = %s",
                     (subscription["id"], victim.tenant_id))
    neighbour_rows = {table: row_count(neighbour, table) for table in ("users", "prompts", "audit_logs")}
    assert _schedule(client, victim).status_code == 202
    _due_now(victim.tenant_id)

    def stopped(*args):
        raise RuntimeError("the process died here")

    # first run: dies just after Stripe canceled the subscription (before it was forgotten)
    monkeypatch.setattr(store_deletion, "forget_subscription", stopped)
    with pytest.raises(RuntimeError, match="stay due"):
        deletion.purge_due()
    monkeypatch.undo()
    assert not _signs_in(victim)  # stopped first
    assert stripe_server.subscriptions[subscription["id"]]["status"] == "canceled"
    # second run: Stripe refuses to cancel twice (reads canceled: done); dies after the S3 objects, before the rows
    monkeypatch.setattr(tenants, "delete_data", stopped)
    with pytest.raises(RuntimeError, match="stay due"):
        deletion.purge_due()
    monkeypatch.undo()
    assert [method for method, path, _ in stripe_server.requests if path.endswith(subscription["id"])] == [
        "DELETE", "DELETE", "GET"]
    assert _objects_of(victim.tenant_id) == []
    with migrations.owner_connect(pool_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM users WHERE tenant_id = %s",
                            (victim.tenant_id,)).fetchone()["n"] == 1
    assert "tenants" in _control_rows_of(victim.tenant_id)

    assert cli.main(["tenants", "delete", victim.slug, "--yes"]) == 0
    assert printed_json(capsys.readouterr().out)["status"] == "deleted"
    assert _control_rows_of(victim.tenant_id) == {}
    with migrations.owner_connect(pool_url) as conn:
        left = conn.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                            "AND column_name = 'tenant_id'").fetchall()
        for table in (row["table_name"] for row in left):
            assert conn.execute(f"SELECT count(*) AS n FROM {table} WHERE tenant_id = %s",
                                (victim.tenant_id,)).fetchone()["n"] == 0, table
    assert cli.main(["tenants", "delete", victim.slug, "--yes"]) == 1
    assert "no tenant" in capsys.readouterr().err

    assert {table: row_count(neighbour, table) for table in neighbour_rows} == neighbour_rows
    assert len(_objects_of(neighbour.tenant_id)) == 4
    assert _signs_in(neighbour)
    assert client.get("/v1/workspace", headers=neighbour.headers).json()["deletion"] is None

