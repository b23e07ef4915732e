"""Stalled activity imports and retries, against real PostgreSQL and the local runtime: a job whose message the
queue gave up on (no progress for longer than the queue retries a message) is failed by the hourly sweep
(CommunityActivityImportFunction's StalledImportsSweep) with an error a user understands; a user retries a
failed job and it resumes after the rows it had processed, inserting nothing twice."""
from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest

from funnel.community import imports, store_imports
from funnel.platform import storage
from tests.integration.community.conftest import PROBLEM

HEADER = "occurred_at,action,provider,external_user_id"


def _job(tenant_conn, owner_id: str, data: bytes, status: str = "queued") -> str:
    """A job as an upload leaves it (its message not sent), in ``status``."""
    key = f"imports/stalled/{uuid.uuid4().hex}.csv"
    storage.put_bytes(key, data, "text/csv")
    with tenant_conn() as conn:
        job_id = str(store_imports.insert_job(conn, owner_id, "utf-8", {"timezone": "UTC"})["job_id"])
        store_imports.set_job_file(conn, job_id, key)
        conn.execute("UPDATE activity_import_jobs SET status = %s WHERE job_id = %s", (status, job_id))
    return job_id


def _age(tenant_conn, job_id: str, seconds: int) -> None:
    with tenant_conn() as conn:
        conn.execute("UPDATE activity_import_jobs SET updated_at = now() - make_interval(secs => %s) "
                     "WHERE job_id = %s", (seconds, job_id))


def _rows(prefix: str, count: int) -> bytes:
    return "\n".join([HEADER, *(f"2026-02-01T10:{n % 60:02d}:{n // 60:02d}Z,star,github,{prefix}{n % 5}"
                                for n in range(count))]).encode()


def _finished(api, headers, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/v1/activity-imports/{job_id}", headers=headers).json()
        if job["status"] in ("completed", "partial", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_the_hourly_sweep_fails_only_the_jobs_stalled_beyond_the_queues_retries(
        api, runtime, community_tenant, owner_headers, tenant_conn):
    owner = community_tenant.owner_id
    stalled_running = _job(tenant_conn, owner, _rows("s1", 3), "running")
    stalled_queued = _job(tenant_conn, owner, _rows("s2", 3), "queued")
    recent = _job(tenant_conn, owner, _rows("s3", 3), "running")
    _age(tenant_conn, stalled_running, imports.STALLED_AFTER_SECONDS + 60)
    _age(tenant_conn, stalled_queued, imports.STALLED_AFTER_SECONDS + 60)
    _age(tenant_conn, recent, imports.STALLED_AFTER_SECONDS - 600)  # its last delivery may still be running

    swept = runtime.invoke("CommunityActivityImportFunction", {"sweep": "stalled-imports"})
    assert swept["failed_tenants"] == 0 and swept["failed_jobs"] >= 2, swept

    for job_id in (stalled_running, stalled_queued):
        job = api.get(f"/v1/activity-imports/{job_id}", headers=owner_headers).json()
        assert (job["status"], job["error"]) == ("failed", imports.STALLED_ERROR), job
        assert job["finished_at"] is not None
    assert api.get(f"/v1/activity-imports/{recent}", headers=owner_headers).json()["status"] == "running"
    assert imports.sweep(community_tenant.tenant_id)["failed_jobs"] == 0  # nothing twice


def test_a_failed_job_retried_resumes_after_its_processed_rows(api, community_tenant, owner_headers, tenant_conn,
                                                               monkeypatch):
    p = uuid.uuid4().hex[:6]
    job_id = _job(tenant_conn, community_tenant.owner_id, _rows(p, 30))
    real_insert, calls = store_imports.insert_from_staging, []

    def dies_on_the_second_chunk(conn):  # every delivery of the message dies the same way: it ends in the DLQ
        calls.append(1)
        if len(calls) == 2:
            raise psycopg.OperationalError("the worker ran out of memory")
        return real_insert(conn)

    monkeypatch.setattr(store_imports, "insert_from_staging", dies_on_the_second_chunk)
    with pytest.raises(psycopg.OperationalError):
        imports.run_import(community_tenant.tenant_id, job_id, chunk_rows=10)
    monkeypatch.undo()
    _age(tenant_conn, job_id, imports.STALLED_AFTER_SECONDS + 1)
    assert imports.sweep(community_tenant.tenant_id)["failed_jobs"] == 1
    failed = api.get(f"/v1/activity-imports/{job_id}", headers=owner_headers).json()
    assert (failed["status"], failed["metrics"]["processed"], failed["metrics"]["inserted"]) == ("failed", 10, 10)

    retried = api.post(f"/v1/activity-imports/{job_id}/retry", headers=owner_headers)
    assert retried.status_code == 202, retried.text
    assert (retried.json()["status"], retried.json()["error"]) == ("queued", None)
    job = _finished(api, owner_headers, job_id)
    assert job["status"] == "completed", job
    assert (job["metrics"]["processed"], job["metrics"]["inserted"], job["metrics"]["duplicates"]) == (30, 30, 0)
    with tenant_conn() as conn:
        assert conn.execute("SELECT count(*) AS n FROM activities x JOIN accounts a USING (account_id) "
                            "WHERE a.external_user_id LIKE %s", (p + "%",)).fetchone()["n"] == 30
        audit = conn.execute("SELECT action FROM audit_logs WHERE resource_id = %s ORDER BY id",
                             (job_id,)).fetchall()
    assert [a["action"] for a in audit] == ["activity.import.stalled", "activity.import.retry"]


def test_only_a_failed_job_of_the_tenant_can_be_retried(api, community_tenant, owner_headers, tenant_conn):
    running = _job(tenant_conn, community_tenant.owner_id, _rows("r", 1), "running")
    answer = api.post(f"/v1/activity-imports/{running}/retry", headers=owner_headers)
    assert answer.status_code == 409 and answer.headers["content-type"] == PROBLEM, answer.text
    assert api.post(f"/v1/activity-imports/{uuid.uuid4()}/retry", headers=owner_headers).status_code == 404


def test_the_sweep_constant_is_the_queues_retry_time(runtime):
    """What a retry can take: the queue's visibility timeout times its receive count, as the runtime's queue
    is configured from template.yaml."""
    attributes = runtime.client("sqs").get_queue_attributes(
        QueueUrl=runtime.queue_urls["CommunityActivityImportQueue"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert imports.STALLED_AFTER_SECONDS == int(attributes["VisibilityTimeout"]) * int(redrive["maxReceiveCount"])
