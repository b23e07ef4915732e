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
