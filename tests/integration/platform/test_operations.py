"""PlatformOperationsFunction through its handler (``runtime.invoke``, as Lambda calls it) against the tests'
PostgreSQL: CloudFormation's custom resource, answered with a PUT to a local HTTP server standing in for the
pre-signed ResponseURL, and the typed operations sign-up and the operator send."""
from __future__ import annotations

import json
import uuid
from http.server import BaseHTTPRequestHandler

import pytest

from funnel import db
from funnel.platform import deletion, migrations, tenants
from funnel.settings import reset_settings
from tests.support.cli import printed_json, printed_lines
from tests.support.network import LocalHTTPServer
from tests.support.tenants import PASSWORD, new_pooled_tenant, new_tenant

pytestmark = pytest.mark.usefixtures("runtime")
FUNCTION = "PlatformOperationsFunction"


class CloudFormationStandIn:
    """Receives the custom resource's answers (PUT, as to S3's pre-signed URL)."""

    def __init__(self) -> None:
        self.answers: list[dict] = []
        self.content_types: list[str | None] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_PUT(self):  # noqa: N802 (http.server naming)
                stand_in.answers.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                stand_in.content_types.append(self.headers.get("content-type"))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = LocalHTTPServer(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/cloudformation-response?X-Amz-Signature=test"


@pytest.fixture
def cloudformation(monkeypatch):
    """The stand-in, and the settings letting the answer go to it (the runtime lets the SSRF guard reach 127.0.0.1)."""
    stand_in = CloudFormationStandIn()
    stand_in.server.start()
    monkeypatch.setenv("FUNNEL_CFN_RESPONSE_URL_PATTERN", rf"^http://127\.0\.0\.1:{stand_in.server.port}/")
    reset_settings()
    try:
        yield stand_in
    finally:
        stand_in.server.stop()
        monkeypatch.undo()
        reset_settings()


def custom_resource_event(url: str, kind: str, layer_version: int = 2, old_version: int = 1) -> dict:
    layer = "arn:aws:lambda:us-east-1:123456789012:layer:funnel-local-shared:{}"
    event = {"RequestType": kind, "ResponseURL": url, "StackId": "arn:aws:cloudformation:us-east-1:123456789012:"
             "stack/funnel-local/1", "RequestId": str(uuid.uuid4()), "ResourceType": "Custom::PlatformMigrations",
             "LogicalResourceId": "PlatformMigrations", "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:"
             "function:funnel-local-platform-operations",
             "ResourceProperties": {"MigrationsVersion": layer.format(layer_version), "Workers": "2"}}
    if kind != "Create":
        event["PhysicalResourceId"] = "funnel-platform-migrations"
        event["OldResourceProperties"] = {"MigrationsVersion": layer.format(old_version), "Workers": "2"}
    return event


def _database_url(slug: str) -> str:
    return tenants.directory.by_slug(slug).database_url


def test_a_deploy_migrates_the_control_database_and_every_tenant_and_answers_cloudformation(runtime, cloudformation):
    handle = new_tenant()
    event = custom_resource_event(cloudformation.url, "Create")
    answer = runtime.invoke(FUNCTION, event)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert cloudformation.answers == [answer]
    assert cloudformation.content_types == [""]  # S3 signed the URL without one
    assert answer["PhysicalResourceId"] == "funnel-platform-migrations"
    assert (answer["RequestId"], answer["StackId"], answer["LogicalResourceId"]) == (
        event["RequestId"], event["StackId"], "PlatformMigrations")
    assert answer["Data"]["Failed"] == 0 and answer["Data"]["AtHead"] >= 1
    assert migrations.is_at_heads(migrations.current_revisions(_database_url(handle.slug)))


def test_a_failed_tenant_fails_the_deploy_by_name_and_the_next_deploy_resumes(runtime, cloudformation):
    healthy, broken = new_tenant(), new_tenant()
    url = _database_url(broken.slug)
    tenants.drop_database(db.database_name(url))
    try:
        failed = runtime.invoke(FUNCTION, custom_resource_event(cloudformation.url, "Update"))
        assert failed["Status"] == "FAILED"
        assert broken.slug in failed["Reason"] and "does not exist" in failed["Reason"]
        assert healthy.slug not in failed["Reason"] and failed["Data"]["Failed"] == 1
        # the database is back, empty: the next deploy migrates it and skips the others, already at head
        migrations.ensure_database(db.database_name(url))
        report = runtime.invoke(FUNCTION, {"action": "migrate_all", "workers": 2})
        statuses = {tuple(d["tenants"]): d["status"] for d in report["databases"]}
        assert report["ok"], report["error"]
        assert statuses[(broken.slug,)] == "migrated" and statuses[(healthy.slug,)] == "at_head"
        assert runtime.invoke(FUNCTION, custom_resource_event(cloudformation.url, "Update"))["Status"] == "SUCCESS"
    finally:
        deletion.purge_now(broken.slug)
    assert [a["Status"] for a in cloudformation.answers] == ["FAILED", "SUCCESS"]


def test_delete_and_a_rollback_answer_success_and_leave_the_databases_alone(runtime, cloudformation):
    handle = new_tenant()
    url = _database_url(handle.slug)
    behind = f"funnel_t_behind_{uuid.uuid4().hex[:8]}"  # an empty database a migration would upgrade
    migrations.ensure_database(behind)
    try:
        with db.control_admin_connect() as conn:
            conn.execute("UPDATE tenants SET database_url = %s WHERE id = %s",
                         (db.replace_database(url, behind), new_pooled_tenant().tenant_id))
        rollback = runtime.invoke(FUNCTION, custom_resource_event(cloudformation.url, "Update", 1, 2))
        deleted = runtime.invoke(FUNCTION, custom_resource_event(cloudformation.url, "Delete"))
        assert (rollback["Status"], deleted["Status"]) == ("SUCCESS", "SUCCESS")
        assert "rollback" in rollback["Reason"] and "stay" in deleted["Reason"]
        assert migrations.current_revisions(db.replace_database(url, behind)) == set()  # not migrated
        assert migrations.is_at_heads(migrations.current_revisions(url))  # nor dropped
    finally:
        with db.control_admin_connect() as conn:
            conn.execute("UPDATE tenants SET status = 'deleted' WHERE database_url = %s",
                         (db.replace_database(url, behind),))
        tenants.drop_database(behind)


def test_an_error_is_answered_as_failed_and_a_foreign_response_url_gets_no_answer(runtime, cloudformation):
    event = custom_resource_event(cloudformation.url, "Update")
    event["ResourceProperties"]["Workers"] = "many"
    answer = runtime.invoke(FUNCTION, event)
    assert answer["Status"] == "FAILED" and "ValueError" in answer["Reason"]
    assert cloudformation.answers[-1]["Status"] == "FAILED"
    elsewhere = custom_resource_event("http://169.254.169.254/latest/", "Delete")
    with pytest.raises(Exception, match="not a CloudFormation response URL"):
        runtime.invoke(FUNCTION, elsewhere)
    assert len(cloudformation.answers) == 1


def test_sign_up_provisions_a_tenant_and_the_operator_migrates_lists_and_deletes_it(runtime):
    slug = f"ops-{uuid.uuid4().hex[:8]}"
    provisioned = runtime.invoke(FUNCTION, {"action": "provision_tenant", "name": "Ops Test", "slug": slug,
                                            "owner_email": f"owner@{slug}.example.com", "owner_password": PASSWORD})
    assert provisioned["ok"], provisioned["error"]
    tenant = provisioned["tenants"][0]
    assert (tenant["slug"], tenant["isolation"], tenant["status"], tenant["server_id"]) == (
        slug, "silo", "active", "primary")
    assert PASSWORD not in json.dumps(provisioned)
    migrated = runtime.invoke(FUNCTION, {"action": "migrate_tenant", "slug": slug})
    assert migrated["ok"] and migrated["databases"][0]["status"] == "at_head"
    listed = runtime.invoke(FUNCTION, {"action": "list_tenants"})
    assert slug in {t["slug"] for t in listed["tenants"]}
    url = _database_url(slug)
    deleted = runtime.invoke(FUNCTION, {"action": "delete_tenant", "slug": slug})
    assert deleted["ok"] and deleted["tenants"][0]["status"] == "deleted"
    with db.admin_connect() as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.database_name(url),)).fetchone() is None
    again = runtime.invoke(FUNCTION, {"action": "migrate_tenant", "slug": slug})
    assert not again["ok"] and "NotFound" in again["error"]


def test_a_pooled_sign_up_is_placed_in_a_pool_and_its_deletion_keeps_the_neighbours_rows(runtime):
    slug = f"ops-{uuid.uuid4().hex[:8]}"
    provisioned = runtime.invoke(FUNCTION, {"action": "provision_tenant", "name": "Pooled", "slug": slug,
                                            "isolation": "pool", "owner_email": f"owner@{slug}.example.com",
                                            "owner_password": PASSWORD})
    assert provisioned["ok"], provisioned["error"]
    placed = provisioned["tenants"][0]
    assert placed["isolation"] == "pool"
    neighbour = new_tenant(pool=placed["database"])
    tenant_id = placed["id"]
    with db.tenant_transaction(tenant_id) as conn:
        conn.execute("INSERT INTO prompts (step, version, content) VALUES ('x', 1, 'mine')")
    assert runtime.invoke(FUNCTION, {"action": "delete_tenant", "slug": slug})["ok"]
    with migrations.owner_connect(_database_url(neighbour.slug)) as conn:
        left = conn.execute("SELECT tenant_id, count(*) AS n FROM users GROUP BY tenant_id").fetchall()
        prompts = conn.execute("SELECT count(*) AS n FROM prompts WHERE tenant_id = %s", (tenant_id,)).fetchone()
    assert tenant_id not in {row["tenant_id"] for row in left} and neighbour.tenant_id in {r["tenant_id"] for r in left}
    assert prompts["n"] == 0


def test_operations_refuse_what_they_cannot_do_with_a_report(runtime):
    unknown = runtime.invoke(FUNCTION, {"action": "delete_tenant", "slug": "no-such-tenant"})
    assert not unknown["ok"] and "no-such-tenant" in unknown["error"]
    taken = runtime.invoke(FUNCTION, {"action": "provision_tenant", "name": "Again", "slug": new_tenant().slug,
                                      "owner_email": "again@example.com", "owner_password": PASSWORD})
    assert not taken["ok"] and taken["error"].startswith("Conflict")
    unreachable = runtime.invoke(FUNCTION, {"action": "add_server", "id": "nowhere",
                                            "url": "postgresql://127.0.0.1:9/", "capacity": 10})
    assert not unreachable["ok"] and "cannot be reached" in unreachable["error"]


def test_the_operator_commands_run_the_same_operations_in_this_process(capsys):
    from funnel import cli

    slug = f"cli-{uuid.uuid4().hex[:8]}"
    assert cli.main(["tenants", "create", "From the CLI", "--slug", slug, "--pooled", "--owner-email",
                     f"owner@{slug}.example.com", "--owner-password", PASSWORD]) == 0
    created = printed_json(capsys.readouterr().out)
    assert (created["slug"], created["isolation"], created["status"]) == (slug, "pool", "active")
    assert cli.main(["migrate", "--workers", "1"]) == 0
    out = printed_lines(capsys.readouterr().out)
    assert any(slug in line.split()[0].split(",") and line.rstrip().endswith("at_head") for line in out if line)
    assert out[-1].startswith("control: ok; tenant databases:") and out[-1].endswith(", 0 failed")
    assert cli.main(["servers", "list"]) == 0
    assert "primary" in capsys.readouterr().out
    assert cli.main(["tenants", "delete", slug, "--yes"]) == 0
    assert printed_json(capsys.readouterr().out)["status"] == "deleted"
    assert cli.main(["tenants", "migrate", slug]) == 1
    assert "no tenant" in capsys.readouterr().err
