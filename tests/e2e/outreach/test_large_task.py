"""A send task's state stays the same size whatever the number of its targets: the ids travel through S3
(the Distributed Map's ItemReader), never through the state (Step Functions refuses payloads over 256 KB,
which a list of ids reached at ~6,500 targets). The browser is an instant form here (tests/support/outreach.py);
benchmarks/outreach_tasks_bench.py runs the same over 50,000 targets."""
from __future__ import annotations

import pytest

from funnel import db
from funnel.outreach import worker
from tests.e2e.outreach.conftest import MESSAGE, SENDER
from tests.support.outreach import InstantForm, insert_pending_targets, largest_state_payload, wait_task
from tests.support.tenants import new_pooled_tenant


@pytest.fixture
def instant_forms(monkeypatch):
    monkeypatch.setattr(worker, "_engine", lambda: InstantForm())


def _send(runtime, api, size: int) -> tuple[dict, int]:
    """A task of ``size`` targets sent to the end; the task and the largest payload of its execution."""
    tenant = new_pooled_tenant()
    task = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": f"{size} targets", "sender": SENDER, "message": MESSAGE, "urls": ["http://127.0.0.1/contact"],
        "recontact_days": 0}).json()
    insert_pending_targets(tenant, task["id"], size - 1)
    assert api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers).status_code == 200
    done = wait_task(api, tenant, task["id"], timeout=300)
    with db.tenant_transaction(tenant.tenant_id) as conn:
        arn = conn.execute("SELECT execution_arn FROM runs WHERE id = %s", (done["run_id"],)).fetchone()[
            "execution_arn"]
    largest, _ = largest_state_payload(runtime.client("stepfunctions"), arn)
    return done, largest


def test_the_largest_state_payload_does_not_grow_with_the_task(runtime, api, instant_forms):
    small, small_payload = _send(runtime, api, 3)
    large, large_payload = _send(runtime, api, 150)
    assert (small["status"], small["summary"]) == ("completed", {"total": 3, "submitted": 3})
    assert (large["status"], large["summary"]) == ("completed", {"total": 150, "submitted": 150})
    # 150 ids alone would be ~6 KB; the state holds the same few fields (ids, the S3 key) for both.
    assert large_payload < 2_000 and abs(large_payload - small_payload) < 100, (small_payload, large_payload)
