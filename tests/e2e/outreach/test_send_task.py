"""A send task through the local runtime: pipeline, browser worker (real Chromium), results."""
from __future__ import annotations

import httpx
import pytest

from funnel import db
from tests.e2e.outreach.conftest import MESSAGE, SENDER
from tests.support.outreach import run_status, wait_task
from tests.support.tenants import new_pooled_tenant
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


def _create(api, tenant, urls, **extra) -> dict:
    response = api.post("/v1/tasks", headers=tenant.headers,
                        json={"name": "Q4 outreach", "sender": SENDER, "message": MESSAGE,
                              "subject": "サービスのご案内", "urls": urls, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_task_over_ten_targets_records_every_result(runtime, api, sites):
    tenant = new_pooled_tenant()
    task = _create(api, tenant, [site.url for site in sites])
    assert task["summary"] == {"total": 10, "pending": 10}
    assert api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers).status_code == 200
    done = wait_task(api, tenant, task["id"])
    assert done["status"] == "completed"
    assert done["summary"] == {"total": 10, "submitted": 7, "captcha": 1, "refused": 1, "no_form": 1}
    for site in sites:
        expected = 1 if site.kind == "form" else 0
        assert len(site.posts) == expected, (site.kind, site.posts)
    posted = sites[0].posts[0]
    assert posted["company"] == SENDER["company"] and posted["email"] == SENDER["email"]
    assert "ご担当者様" in posted["message"] and "山田 太郎" in posted["message"]
    targets = api.get(f"/v1/tasks/{task['id']}/targets", headers=tenant.headers).json()["items"]
    submitted = [t for t in targets if t["status"] == "submitted"]
    assert all(t["screenshots"] and t["fields_file"] and t["last_attempt_at"] for t in submitted)
    screenshot = httpx.get(submitted[0]["screenshots"][0]["url"], timeout=30)  # a signed link: no credentials
    assert screenshot.status_code == 200 and screenshot.content.startswith(b"\x89PNG")
    fields = httpx.get(submitted[0]["fields_file"]["url"], timeout=30).json()
    assert {"semantic": "email", "value": SENDER["email"]}.items() <= next(
        f for f in fields if f["semantic"] == "email").items()
    assert fields == submitted[0]["fields"]
    with db.tenant_transaction(tenant.tenant_id) as conn:
        notes = conn.execute("SELECT title FROM notifications WHERE related_entity_id = %s", (task["id"],)).fetchall()
        history = conn.execute("SELECT count(*) AS n FROM sent_history WHERE task_id = %s", (task["id"],)).fetchone()
    assert notes and "Q4 outreach" in notes[0]["title"] and history["n"] == 7
    again = _create(api, tenant, [sites[0].url])  # the same company again: refused by the sent history
    assert again["summary"] == {"total": 1, "skipped": 1}


def test_review_mode_fills_without_sending_until_approved(runtime, api, sites):
    tenant = new_pooled_tenant()
    first, second = sites[0], sites[1]
    before = (len(first.posts), len(second.posts))
    task = _create(api, tenant, [first.url, second.url], mode="review", recontact_days=0)
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    reviewed = wait_task(api, tenant, task["id"])
    assert reviewed["status"] == "review" and reviewed["summary"] == {"total": 2, "review": 2}
    assert (len(first.posts), len(second.posts)) == before
    targets = {t["target_url"]: t for t in api.get(f"/v1/tasks/{task['id']}/targets", headers=tenant.headers).json()[
        "items"]}
    assert all(t["screenshots"] for t in targets.values())
    approve = targets[first.url]["id"]
    reject = targets[second.url]["id"]
    edited = "ファースト株式会社 ご担当者様\nレビューで書き直した本文です。"
    assert api.patch(f"/v1/tasks/{task['id']}/targets/{approve}", headers=tenant.headers,
                     json={"message": edited}).status_code == 200
    assert api.post(f"/v1/tasks/{task['id']}/targets/{approve}/approve", headers=tenant.headers).status_code == 200
    assert api.post(f"/v1/tasks/{task['id']}/targets/{reject}/reject", headers=tenant.headers).status_code == 200
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    sent = wait_task(api, tenant, task["id"], statuses=("completed",))
    assert sent["summary"] == {"total": 2, "submitted": 1, "rejected": 1}
    assert (len(first.posts), len(second.posts)) == (before[0] + 1, before[1])
    assert "レビューで書き直した本文です。" in first.posts[-1]["message"]  # the reviewer's text was sent


def test_a_target_claimed_by_a_crashed_worker_is_not_submitted_again(runtime, api, sites):
    tenant = new_pooled_tenant()
    site = sites[2]
    before = len(site.posts)
    task = _create(api, tenant, [site.url], recontact_days=0)
    with db.tenant_transaction(tenant.tenant_id) as conn:  # what a worker killed after its click leaves behind
        target = conn.execute("SELECT id FROM task_targets WHERE task_id = %s", (task["id"],)).fetchone()
        conn.execute("INSERT INTO browser_jobs (task_target_id, user_id, state) VALUES (%s, %s, 'submitting')",
                     (target["id"], tenant.owner_id))
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    done = wait_task(api, tenant, task["id"])
    assert done["summary"] == {"total": 1, "submitted": 1}
    assert len(site.posts) == before
    [row] = api.get(f"/v1/tasks/{task['id']}/targets", headers=tenant.headers).json()["items"]
    assert "not sent again" in row["result_summary"]


def test_a_paused_task_stops_dispatching_and_resumes(runtime, api, sites):
    tenant = new_pooled_tenant()
    chosen = sites[3:7]
    before = [len(s.posts) for s in chosen]
    task = _create(api, tenant, [s.url for s in chosen], recontact_days=0)
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    assert api.post(f"/v1/tasks/{task['id']}/pause", headers=tenant.headers).json()["status"] == "paused"
    paused = wait_task(api, tenant, task["id"], statuses=("paused",))
    wait_until(lambda: run_status(tenant, paused["run_id"]), lambda status: status != "running", 60,
               "the paused task's run still running")
    summary = api.get(f"/v1/tasks/{task['id']}", headers=tenant.headers).json()["summary"]
    assert summary.get("pending", 0) >= 1, summary  # not everything was sent while paused
    assert api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers).status_code == 200
    done = wait_task(api, tenant, task["id"], statuses=("completed",))
    assert done["summary"] == {"total": 4, "submitted": 4}
    assert [len(s.posts) - b for s, b in zip(chosen, before, strict=True)] == [1, 1, 1, 1]



def test_ai_mode_personalises_each_message_and_records_the_call(runtime, api, sites):
    tenant = new_pooled_tenant()
    assert api.put("/v1/llm/step-defaults/personalize_message", headers=tenant.headers,
                   json={"provider_id": "offline", "model_class": "standard"}).status_code == 200
    template = api.post("/v1/templates", headers=tenant.headers,
                        json={"title": "AI intro", "body": MESSAGE, "ai_mode": True}).json()
    site = sites[0]
    response = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": "ai", "mode": "review", "sender": SENDER, "template_id": template["id"], "urls": [site.url],
        "recontact_days": 0})
    task = response.json()
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    assert wait_task(api, tenant, task["id"])["status"] == "review"
    [target] = api.get(f"/v1/tasks/{task['id']}/targets", headers=tenant.headers).json()["items"]
    assert target["message"].startswith("[offline model") and "ご担当者様" in target["message"]
    with db.tenant_transaction(tenant.tenant_id) as conn:
        run = conn.execute("SELECT step, model, prompt_tokens, response_json FROM ai_runs WHERE task_target_id = %s",
                           (target["id"],)).fetchone()
    assert run["step"] == "personalize_message" and run["model"] == "offline/offline-standard"
    assert run["prompt_tokens"] > 0 and run["response_json"]["site_chars"] > 0
    [shown] = target["ai_runs"]
    assert (shown["step"], shown["model"], shown["prompt_tokens"]) == ("personalize_message",
                                                                       "offline/offline-standard", run["prompt_tokens"])
    usage = api.get(f"/v1/tasks/{task['id']}", headers=tenant.headers).json()["llm_usage"]
    assert usage["runs"] == 1 and usage["prompt_tokens"] == run["prompt_tokens"]
    assert usage["completion_tokens"] == shown["completion_tokens"] and usage["cost_estimate"] >= 0


def test_an_ai_provider_error_fails_the_task_visibly(runtime, api, sites):
    tenant = new_pooled_tenant()  # personalize_message defaults to a real provider with no API key here
    template = api.post("/v1/templates", headers=tenant.headers,
                        json={"title": "AI intro", "body": MESSAGE, "ai_mode": True}).json()
    task = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": "ai-broken", "sender": SENDER, "template_id": template["id"], "urls": [sites[1].url],
        "recontact_days": 0}).json()
    before = len(sites[1].posts)
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    failed = wait_task(api, tenant, task["id"], statuses=("failed",))
    run = api.get(f"/v1/runs/{failed['run_id']}", headers=tenant.headers).json()
    assert run["status"] == "failed" and "no API key" in run["error_message"]
    assert len(sites[1].posts) == before
