"""The custom resource's decisions (``operations_deploy.decide``) over a fake ``operations.run``: Create and Update
migrate, a failed tenant is a FAILED answer naming it, Delete and a rollback migrate nothing, an exception is
still an answer, the Reason stays below CloudFormation's limit; only CloudFormation's response URLs are
answered; and the typed operation events. No database."""
from __future__ import annotations

import pytest

from funnel.platform import operations, operations_deploy, ssrf
from funnel.platform.operations import Report, TenantDatabaseReport

LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:funnel-prod-shared:{}"


def request(kind: str, new: int | None = 7, old: int | None = 6, **extra) -> operations_deploy.CustomResourceRequest:
    event = {"RequestType": kind, "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3."
             "amazonaws.com/x", "StackId": "arn:aws:cloudformation:us-east-1:1:stack/funnel-prod/1", "RequestId": "r1",
             "LogicalResourceId": "PlatformMigrations",
             "ResourceProperties": {"MigrationsVersion": LAYER.format(new), **extra} if new else {},
             "OldResourceProperties": {"MigrationsVersion": LAYER.format(old)} if old else {}}
    if kind != "Create":
        event["PhysicalResourceId"] = "funnel-platform-migrations"
    return operations_deploy.CustomResourceRequest.model_validate(event)


def database(slug: str, status: str, error: str | None = None) -> TenantDatabaseReport:
    return TenantDatabaseReport(tenants=[slug], database=f"funnel_t_{slug}", server_id="primary", status=status,
                                seconds=0.1, error=error)


@pytest.fixture
def migrations_run(monkeypatch):
    calls: list[dict] = []
    outcome = {"report": Report(action="migrate_all", ok=True, databases=[database("a", "migrated"),
                                                                          database("b", "at_head")])}

    def run(event, deadline=None):
        calls.append({**event, "deadline": deadline})
        if isinstance(outcome["report"], Exception):
            raise outcome["report"]
        return outcome["report"]

    monkeypatch.setattr(operations, "run", run)
    return calls, outcome


@pytest.mark.parametrize("kind", ["Create", "Update"])
def test_create_and_update_migrate_and_report_the_counts(migrations_run, kind):
    calls, _ = migrations_run
    answer = operations_deploy.decide(request(kind, Workers="3"), lambda: 900.0)
    assert answer.Status == "SUCCESS" and answer.Data == {"Migrated": 1, "AtHead": 1, "Failed": 0}
    assert answer.PhysicalResourceId == "funnel-platform-migrations" and answer.RequestId == "r1"
    assert calls[0]["action"] == "migrate_all" and calls[0]["workers"] == 3
    assert calls[0]["deadline"] is not None  # the remaining time less the margin for the answer


def test_a_failed_tenant_fails_the_deploy_naming_it(migrations_run):
    _, outcome = migrations_run
    outcome["report"] = Report(action="migrate_all", ok=False, error="1 of 2 tenant databases not migrated: "
                               "acme: OperationalError: database \"funnel_t_acme\" does not exist",
                               databases=[database("acme", "failed", "OperationalError: ..."),
                                          database("b", "at_head")])
    answer = operations_deploy.decide(request("Update"), lambda: 900.0)
    assert answer.Status == "FAILED" and "acme" in answer.Reason and "does not exist" in answer.Reason
    assert answer.Data["Failed"] == 1


def test_delete_and_a_rollback_migrate_nothing(migrations_run):
    calls, _ = migrations_run
    assert operations_deploy.decide(request("Delete"), lambda: 900.0).Status == "SUCCESS"
    rollback = operations_deploy.decide(request("Update", new=6, old=7), lambda: 900.0)
    assert rollback.Status == "SUCCESS" and "rollback" in rollback.Reason
    assert calls == []
    assert not operations_deploy.is_rollback(request("Update", new=None, old=7))  # unknown: migrate


def test_an_exception_is_still_an_answer_and_a_long_reason_is_cut(migrations_run):
    _, outcome = migrations_run
    outcome["report"] = RuntimeError("x" * 10_000)
    answer = operations_deploy.decide(request("Create"), lambda: 900.0)
    assert answer.Status == "FAILED" and answer.Reason.startswith("RuntimeError: xxx")
    assert len(answer.model_dump_json()) < 4096


def test_only_cloudformation_response_urls_are_answered():
    operations_deploy.check_response_url(
        "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/arn%3A?X-Amz-Signature=1")
    for url in ("https://example.com/", "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/",
                "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com.example.com/",
                "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(ssrf.UnsafeUrlError):
            operations_deploy.check_response_url(url)


def test_operation_events_are_typed():
    assert isinstance(operations.parse({"action": "migrate_tenant", "slug": "acme"}), operations.MigrateTenant)
    provision = operations.parse({"action": "provision_tenant", "name": "Acme", "owner_email": "a@example.com",
                                  "owner_password": "a long password", "isolation": "pool"})
    assert isinstance(provision, operations.ProvisionTenant) and "a long password" not in repr(provision)
    report = operations.run({"action": "drop_everything"})
    assert not report.ok and report.error.startswith("invalid drop_everything request")
    report = operations.run({"action": "migrate_tenant", "slug": "Not A Slug"})
    assert not report.ok and "slug" in report.error
    report = operations.run({"action": "add_server", "id": "second", "url": "postgresql://u:secret@db:5432/",
                             "capacity": 10})
    assert not report.ok and "url" in report.error  # credentials never go into the registry
