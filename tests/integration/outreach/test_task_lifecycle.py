"""Task lifecycle rules through the API (no browser): a failed start leaves nothing half-started,
state transitions are refused with 409, other tenants see 404, resend after crash is idempotent."""
from __future__ import annotations

import pytest

from funnel import db
from funnel.outreach import tasks
from funnel.settings import reset_settings
from tests.support.outreach import SENDER
from tests.support.tenants import new_pooled_tenant


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
    tenant = new_pooled_tenant()
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
    tenant = new_pooled_tenant()
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
    owner, stranger = new_pooled_tenant(), new_pooled_tenant()
    task = _task(api, owner)
    [target, _] = api.get(f"/v1/tasks/{task['id']}/targets", headers=owner.headers).json()["items"]
    with db.tenant_transaction(owner.tenant_id) as conn:
        conn.execute("UPDATE task_targets SET status = 'review' WHERE id = %s", (target["id"],))
    for method, path in (("GET", ""), ("GET", "/targets"), ("POST", "/start"), ("POST", "/pause"),
                         ("POST", "/cancel"), ("PATCH", f"/targets/{target['id']}")):
        response = api.request(method, f"/v1/tasks/{task['id']}{path}", headers=stranger.headers,
                               **({"json": {"message": "hijacked"}} if method == "PATCH" else {}))
        assert response.status_code == 404, (method, path, response.text)
    assert api.get(f"/v1/tasks/{task['id']}", headers=owner.headers).json()["status"] == "draft"
    assert api.get("/v1/tasks", headers=stranger.headers).json()["items"] == []
    mine = api.get(f"/v1/tasks/{task['id']}/targets", headers=owner.headers, params={"status": "review"}).json()
    assert [t["message"] for t in mine["items"]] == [target["message"]]


def test_tasks_are_listed_with_their_counts_and_targets_are_paged_and_filtered(api, allowed):
    tenant = new_pooled_tenant()
    task = _task(api, tenant, urls=["https://one.example.com/", "https://two.example.com/", "127.0.0.1"])
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE task_targets SET status = 'skipped' WHERE task_id = %s AND domain = '127.0.0.1'",
                     (task["id"],))
    [listed] = api.get("/v1/tasks", headers=tenant.headers).json()["items"]
    assert listed["id"] == task["id"] and listed["summary"] == {"total": 3, "pending": 2, "skipped": 1}
    detail = api.get(f"/v1/tasks/{task['id']}", headers=tenant.headers).json()
    assert detail["llm_usage"] == {"runs": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_estimate": 0}
    path = f"/v1/tasks/{task['id']}/targets"
    first = api.get(path, headers=tenant.headers, params={"limit": 2}).json()
    rest = api.get(path, headers=tenant.headers, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    paged = [t["domain"] for t in first["items"] + rest["items"]]  # one transaction's targets: in id order
    assert sorted(paged) == ["127.0.0.1", "one.example.com", "two.example.com"] and len(first["items"]) == 2
    assert rest["next_cursor"] is None and first["items"][0]["ai_runs"] == []
    assert first["items"][0]["screenshots"] == [] and first["items"][0]["fields_file"] is None
    pending = api.get(path, headers=tenant.headers, params={"status": "pending", "limit": 1}).json()
    more = api.get(path, headers=tenant.headers, params={"status": "pending", "cursor": pending["next_cursor"]})
    assert [t["status"] for t in pending["items"] + more.json()["items"]] == ["pending", "pending"]
    for params in ({"status": "sent"}, {"cursor": "not-a-cursor"}, {"limit": 0}):
        refused = api.get(path, headers=tenant.headers, params=params)
        assert refused.status_code == 422, (params, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"


def test_only_a_target_waiting_for_review_can_be_edited(api, allowed):
    tenant = new_pooled_tenant()
    task = _task(api, tenant, mode="review")
    [waiting, pending] = api.get(f"/v1/tasks/{task['id']}/targets", headers=tenant.headers).json()["items"]
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE task_targets SET status = 'review' WHERE id = %s", (waiting["id"],))
    path = f"/v1/tasks/{task['id']}/targets"
    edited = api.patch(f"{path}/{waiting['id']}", headers=tenant.headers,
                       json={"subject": "ご相談", "message": "ワン株式会社 御中\n手直しした本文"})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["subject"], edited.json()["message"]) == ("ご相談", "ワン株式会社 御中\n手直しした本文")
    late = api.patch(f"{path}/{pending['id']}", headers=tenant.headers, json={"message": "x"})
    assert late.status_code == 409 and "waiting for review" in late.json()["detail"]
    for body in ({}, {"message": None}, {"message": ""}, {"subject": "s" * 301}, {"status": "approved"}):
        refused = api.patch(f"{path}/{waiting['id']}", headers=tenant.headers, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    missing = api.patch(f"{path}/00000000-0000-4000-8000-000000000000", headers=tenant.headers, json={"message": "x"})
    assert missing.status_code == 404
    assert api.post(f"{path}/{waiting['id']}/approve", headers=tenant.headers).json()["message"].endswith("本文")
    assert api.patch(f"{path}/{waiting['id']}", headers=tenant.headers, json={"message": "x"}).status_code == 409


def test_one_target_per_company_domain_within_a_task(api, allowed):
    tenant = new_pooled_tenant()
    task = _task(api, tenant, urls=["https://one.example.com/contact", "http://www.one.example.com/form",
                                    "one.example.com/other", "https://two.example.com/"])
    targets = api.get(f"/v1/tasks/{task['id']}/targets", headers=tenant.headers).json()["items"]
    assert sorted(t["domain"] for t in targets) == ["one.example.com", "two.example.com"]
    assert {t["target_url"] for t in targets} == {"https://one.example.com/contact", "https://two.example.com/"}


def test_contacts_can_be_updated_and_stay_one_per_domain(api, allowed):
    tenant = new_pooled_tenant()
    one = api.post("/v1/contacts", headers=tenant.headers,
                   json={"company_name": "One", "url": "https://one.example.com"}).json()
    api.post("/v1/contacts", headers=tenant.headers, json={"company_name": "Two", "url": "two.example.com"})
    changed = api.patch(f"/v1/contacts/{one['id']}", headers=tenant.headers,
                        json={"phone": "０３-１１１１-２２２２", "url": "WWW.ONE.example.com/contact"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["phone"] == "0311112222" and changed.json()["default_url"] == "https://www.one.example.com/contact"
    assert changed.json()["company_name"] == "One" and changed.json()["domain"] == "one.example.com"
    clash = api.patch(f"/v1/contacts/{one['id']}", headers=tenant.headers, json={"url": "https://two.example.com/x"})
    assert clash.status_code == 409
    bad = api.patch(f"/v1/contacts/{one['id']}", headers=tenant.headers, json={"corporate_number": "12"})
    assert bad.status_code == 422
    assert api.get(f"/v1/contacts/{one['id']}", headers=tenant.headers).json()["default_url"].endswith("/contact")


def test_templates_list_update_and_delete_with_variables_checked(api):
    tenant = new_pooled_tenant()
    made = api.post("/v1/templates", headers=tenant.headers,
                    json={"title": "Intro", "body": "{{company_name}} 御中"}).json()
    listed = api.get("/v1/templates", headers=tenant.headers).json()
    assert [t["id"] for t in listed["items"]] == [made["id"]] and listed["next_cursor"] is None
    refused = api.patch(f"/v1/templates/{made['id']}", headers=tenant.headers, json={"subject": "{{boss}}様へ"})
    assert refused.status_code == 422 and "boss" in refused.json()["detail"]
    changed = api.patch(f"/v1/templates/{made['id']}", headers=tenant.headers,
                        json={"body": "{{contact_person}}様", "ai_mode": True})
    assert changed.status_code == 200 and changed.json()["body"] == "{{contact_person}}様"
    assert changed.json()["metadata"]["ai_mode"] is True and changed.json()["title"] == "Intro"
    assert api.delete(f"/v1/templates/{made['id']}", headers=tenant.headers).status_code == 204
    assert api.get(f"/v1/templates/{made['id']}", headers=tenant.headers).status_code == 404


def test_do_not_contact_entries_are_listed_and_only_manual_ones_removed(api):
    tenant = new_pooled_tenant()
    added = api.post("/v1/do-not-contact", headers=tenant.headers,
                     json={"kind": "domain", "value": "https://www.nope.example.com/"}).json()
    with db.tenant_transaction(tenant.tenant_id) as conn:
        from funnel.platform import suppression

        unsubscribed = suppression.suppress(conn, "email", "Reader@Example.com", "unsubscribed", "email:unsubscribe")
    listed = api.get("/v1/do-not-contact", headers=tenant.headers).json()["items"]
    assert {(s["kind"], s["value"]) for s in listed} == {("domain", "nope.example.com"),
                                                         ("email", "reader@example.com")}
    kept = api.delete(f"/v1/do-not-contact/{unsubscribed['id']}", headers=tenant.headers)
    assert kept.status_code == 409 and "unsubscribed" in kept.json()["detail"]
    assert api.delete(f"/v1/do-not-contact/{added['id']}", headers=tenant.headers).status_code == 204
    assert [s["kind"] for s in api.get("/v1/do-not-contact", headers=tenant.headers).json()["items"]] == ["email"]


def test_only_a_paused_task_can_be_resumed(api, allowed):
    tenant = new_pooled_tenant()
    task = _task(api, tenant)
    refused = api.post(f"/v1/tasks/{task['id']}/resume", headers=tenant.headers)
    assert refused.status_code == 409 and "draft" in refused.json()["detail"]
