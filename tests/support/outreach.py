"""Outreach through the API for tests: a sender profile, a CSV import, waiting for a background import or a send
task."""
from __future__ import annotations

import httpx

from funnel import db
from tests.support.tenants import TenantHandle
from tests.support.waiting import wait_until

SENDER = {"company": "株式会社サンプル", "last_name": "山田", "first_name": "太郎", "email": "taro@example.co.jp"}


def import_csv(api: httpx.Client, tenant: TenantHandle, data: bytes) -> httpx.Response:
    return api.post("/v1/contacts/import", headers={**tenant.headers, "content-type": "text/csv"}, content=data)


def finished_import_job(api: httpx.Client, tenant: TenantHandle, job_id: str, timeout: float = 60.0) -> dict:
    """The import job once it has completed or failed."""
    return wait_until(lambda: api.get(f"/v1/contacts/import-jobs/{job_id}", headers=tenant.headers).json(),
                      lambda job: job["status"] in ("completed", "failed"), timeout, f"import job {job_id} unfinished")


def wait_task(api: httpx.Client, tenant: TenantHandle, task_id: str,
              statuses: tuple[str, ...] = ("completed", "review", "paused", "cancelled", "failed"),
              timeout: float = 120.0) -> dict:
    """The send task once its status is one of ``statuses``."""
    return wait_until(lambda: api.get(f"/v1/tasks/{task_id}", headers=tenant.headers).json(),
                      lambda task: task["status"] in statuses, timeout, f"task {task_id} not {'/'.join(statuses)}")


def run_status(tenant: TenantHandle, run_id: str) -> str:
    """The status of a task's run as stored (the task's own status changes first when it is paused)."""
    with db.tenant_transaction(tenant.tenant_id) as conn:
        return conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,)).fetchone()["status"]


class InstantForm:
    """Every company's contact form, accepting each submission at once: stands in for the browser
    (``funnel.outreach.worker._engine``) where the send pipeline, not the form engine, is measured."""

    allow_hosts: tuple[str, ...] = ()
    screenshot_dir = None

    def submit(self, url, sender, message, subject, *, dry_run, before_submit):
        from funnel.outreach.forms.model import FieldFill, FormResult, Status

        fields = [FieldFill("email", "email", sender.email), FieldFill("message", "message", message)]
        if dry_run:
            return FormResult(Status.READY, fields, message="filled, stopped before sending (review)")
        if not before_submit():
            return FormResult(Status.ABORTED, fields)
        return FormResult(Status.SUBMITTED, fields, message="the site thanked us")


def insert_pending_targets(tenant: TenantHandle, task_id: str, count: int) -> None:
    """``count`` more pending targets of the task, each its own company domain, in one statement."""
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("INSERT INTO task_targets (task_id, target_url, domain, company_name, message, status) "
                     "SELECT %s, 'http://127.0.0.1/contact/' || n, 'company-' || n || '.example', 'Company ' || n, "
                     "'hello', 'pending' FROM generate_series(1, %s) AS n", (task_id, count))


def largest_state_payload(stepfunctions, execution_arn: str) -> tuple[int, str]:
    """The largest input, output or parameters (in bytes) an event of the execution's history carries, and the
    type of that event: what Step Functions' 256 KB payload limit applies to."""
    largest, kind, token = 0, "", None
    while True:
        page = stepfunctions.get_execution_history(executionArn=execution_arn, maxResults=1000,
                                                   **({"nextToken": token} if token else {}))
        for event in page["events"]:
            for details in (value for value in event.values() if isinstance(value, dict)):
                for name in ("input", "output", "parameters"):
                    size = len(str(details.get(name) or "").encode())
                    if size > largest:
                        largest, kind = size, event["type"]
        token = page.get("nextToken")
        if not token:
            return largest, kind
