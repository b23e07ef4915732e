"""Task lifecycle rules through the API (no browser): a failed start leaves nothing half-started,
state transitions are refused with 409, other tenants see 404, resend after crash is idempotent."""
from __future__ import annotations

import pytest

from funnel import db
from funnel.outreach import tasks
from funnel.settings import reset_settings
from tests.support.tenants import new_tenant

SENDER = {"company": "株式会社サンプル", "last_name": "山田", "first_name": "太郎", "email": "taro@example.co.jp"}


@pytest.fixture
def allowed(monkeypatch):
    """No DNS in the sandbox: allow-list the example hosts so the SSRF guard need not resolve them."""
    monkeypatch.setenv("FUNNEL_SSRF_ALLOW_HOSTS", "127.0.0.1,localhost,one.example.com,two.example.com")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def _task(api, tenant, **extra) -> dict:
    response = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": "lifecycle", "sender": SENDER, "message": "{{company_name}} 御中",
        "urls": ["https://one.example.com/contact", "https://two.example.com/"], "recontact_days": 0, **extra})
    assert response.status_code == 201, response.text
    return response.json()


class _Unavailable:
    def start_execution(self, **_):
        raise ConnectionError("states endpoint unreachable")


def test_a_start_that_cannot_reach_step_functions_leaves_the_task_startable(runtime, api, allowed, monkeypatch):
    tenant = new_tenant()
    task = _task(api, tenant)
    monkeypatch.setattr(tasks, "_stepfunctions", lambda: _Unavailable())
    failed = api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    assert failed.status_code >= 500
    again = api.get(f"/v1/tasks/{task['id']}", headers=tenant.headers).json()
    assert again["status"] == "draft" and again["started_at"] is None
    assert again["summary"] == {"total": 2, "pending": 2}
    with db.tenant_transaction(tenant.tenant_id) as conn:
        run = conn.execute("SELECT status, error_message FROM runs WHERE id = %s", (again["run_id"],)).fetchone()
    assert run["status"] == "failed" and "could not start the send pipeline" in run["error_message"]


def test_state_transitions_are_checked(api, allowed):
    tenant = new_tenant()
    task = _task(api, tenant)
    assert api.post(f"/v1/tasks/{task['id']}/pause", headers=tenant.headers).status_code == 409  # not running
    [target, _] = api.get(f"/v1/tasks/{task['id']}/targets", headers=tenant.headers).json()["items"]
    approve = api.post(f"/v1/tasks/{task['id']}/targets/{target['id']}/approve", headers=tenant.headers)
    assert approve.status_code == 409 and "review" in approve.json()["detail"]
    cancelled = api.post(f"/v1/tasks/{task['id']}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.get(f"/v1/tasks/{task['id']}", headers=tenant.headers).json()["summary"] == {"total": 2, "skipped": 2}
    for action in ("start", "cancel", "pause"):
        assert api.post(f"/v1/tasks/{task['id']}/{action}", headers=tenant.headers).status_code == 409, action


def test_another_tenant_cannot_see_or_drive_the_task(api, allowed):
    owner, stranger = new_tenant(), new_tenant()
    task = _task(api, owner)
    for method, path in (("GET", ""), ("GET", "/targets"), ("POST", "/start"), ("POST", "/pause"),
                         ("POST", "/cancel")):
        response = api.request(method, f"/v1/tasks/{task['id']}{path}", headers=stranger.headers)
        assert response.status_code == 404, (method, path, response.text)
    assert api.get(f"/v1/tasks/{task['id']}", headers=owner.headers).json()["status"] == "draft"


def test_one_target_per_company_domain_within_a_task(api, allowed):
    tenant = new_tenant()
    task = _task(api, tenant, urls=["https://one.example.com/contact", "http://www.one.example.com/form",
                                    "one.example.com/other", "https://two.example.com/"])
    targets = api.get(f"/v1/tasks/{task['id']}/targets", headers=tenant.headers).json()["items"]
    assert sorted(t["domain"] for t in targets) == ["one.example.com", "two.example.com"]
    assert {t["target_url"] for t in targets} == {"https://one.example.com/contact", "https://two.example.com/"}
