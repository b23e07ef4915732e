"""Outreach through the API for tests: a sender profile, a CSV import, and waiting for a background import."""
from __future__ import annotations

import time

import httpx

from tests.support.tenants import TenantHandle

SENDER = {"company": "株式会社サンプル", "last_name": "山田", "first_name": "太郎", "email": "taro@example.co.jp"}


def import_csv(api: httpx.Client, tenant: TenantHandle, data: bytes) -> httpx.Response:
    return api.post("/v1/contacts/import", headers={**tenant.headers, "content-type": "text/csv"}, content=data)


def finished_import_job(api: httpx.Client, tenant: TenantHandle, job_id: str, timeout: float = 60.0) -> dict:
    """The import job once it has completed or failed, or as it stands after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/v1/contacts/import-jobs/{job_id}", headers=tenant.headers).json()
        if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)
