"""Send-task safety through the local runtime with real Chromium: a confirm-step site in review mode,
a worker that crashes after its click, busy and stuck browser slots, the send window and the daily cap."""
from __future__ import annotations

import shutil
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from funnel import db
from funnel.outreach import worker
from funnel.settings import reset_settings
from tests.e2e.outreach.conftest import MESSAGE, SENDER
from tests.support.contact_sites import ContactSite
from tests.support.outreach import run_status, wait_task
from tests.support.tenants import new_pooled_tenant
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def more_sites(runtime, monkeypatch_module):
    """Own sites (127.0.0.4N) so these tests never share a company domain with test_send_task."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("Chromium is not installed (scripts/install-system-deps.sh chromium)")
    kinds = ["confirm", "form", "form", "form", "form", "form", "form"]
    started = [ContactSite(f"127.0.0.{40 + index}", kind).start() for index, kind in enumerate(kinds)]
    monkeypatch_module.setenv("FUNNEL_SSRF_ALLOW_HOSTS",
                              ",".join(sorted({"127.0.0.1", "localhost", *(s.host for s in started)})))
    reset_settings()
    yield started
    for site in started:
        site.stop()
    reset_settings()


def _create(api, tenant, urls, **extra) -> dict:
    response = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": "safety", "sender": SENDER, "message": MESSAGE, "urls": urls, "recontact_days": 0, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def _targets(api, tenant, task_id) -> list[dict]:
    return api.get(f"/v1/tasks/{task_id}/targets", headers=tenant.headers).json()["items"]


@pytest.fixture
def reported_failures(monkeypatch) -> list[str]:
    """The errors the browser worker reports to the send pipeline (SendTaskFailure), as the local Step Functions
    receives them: a target's attempts run in a child execution of the Distributed Map, whose history is its own
    (moto keeps none of it), so the parent execution's history no longer shows them."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    errors: list[str] = []
    receive = StepFunctionsParserBackend.send_task_failure

    def send_task_failure(self, task_token, error=None, cause=None):
        errors.append(str(error))
        return receive(self, task_token, error=error, cause=cause)

    monkeypatch.setattr(StepFunctionsParserBackend, "send_task_failure", send_task_failure)
    return errors


def test_review_mode_stops_on_the_confirm_screen_and_the_approved_target_is_filled_afresh(api, more_sites):
    tenant = new_pooled_tenant()
    site = more_sites[0]
    task = _create(api, tenant, [site.url], mode="review")
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    assert wait_task(api, tenant, task["id"], ("review",))["summary"] == {"total": 1, "review": 1}
    assert (len(site.confirms), len(site.posts)) == (1, 0)  # filled and confirmed, never sent
    [target] = _targets(api, tenant, task["id"])
    assert target["screenshots"] and "confirm screen" in target["result_summary"]
    with db.tenant_transaction(tenant.tenant_id) as conn:
        titles = [r["title"] for r in conn.execute("SELECT title FROM notifications WHERE related_entity_id = %s",
                                                    (task["id"],))]
    assert titles == ['Send task "safety" is ready for review: 1 forms filled']
    assert api.post(f"/v1/tasks/{task['id']}/targets/{target['id']}/approve",
                    headers=tenant.headers).status_code == 200
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    assert wait_task(api, tenant, task["id"], ("completed",))["summary"] == {"total": 1, "submitted": 1}
    assert (len(site.confirms), len(site.posts)) == (2, 1)  # a fresh session: confirm again, then send once
    assert site.posts[0]["company"] == SENDER["company"] and "ご担当者様" in site.posts[0]["body"]


def test_a_worker_crashing_after_its_click_is_retried_by_the_pipeline_without_a_second_post(
        api, more_sites, monkeypatch, reported_failures):
    tenant = new_pooled_tenant()
    site = more_sites[1]
    real, crashes = worker._store_screenshots, []

    def crash_once(*args, **kwargs):  # the form was posted; the worker dies before recording it
        if not crashes:
            crashes.append(1)
            raise ConnectionResetError("worker lost its connection after the click")
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "_store_screenshots", crash_once)
    before = len(site.posts)
    task = _create(api, tenant, [site.url])
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    done = wait_task(api, tenant, task["id"], ("completed",))
    assert crashes and done["summary"] == {"total": 1, "submitted": 1}
    assert len(site.posts) == before + 1
    [target] = _targets(api, tenant, task["id"])
    assert target["retry_count"] == 1 and "not sent again" in target["result_summary"]
    assert "Outreach.Retry" in reported_failures


def _blocker_job(tenant, url: str, api, heartbeat_age: str) -> str:
    """A browser job of the same user holding a slot (fresh heartbeat) or stuck (old heartbeat)."""
    other = _create(api, tenant, [url])
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE users SET max_concurrency = 1 WHERE id = %s", (tenant.owner_id,))
        target = conn.execute("SELECT id FROM task_targets WHERE task_id = %s", (other["id"],)).fetchone()
        return str(conn.execute(
            "INSERT INTO browser_jobs (task_target_id, user_id, started_at, heartbeat_at) VALUES "
            "(%s, %s, now() - %s::interval, now() - %s::interval) RETURNING id",
            (target["id"], tenant.owner_id, heartbeat_age, heartbeat_age)).fetchone()["id"])


def test_a_busy_slot_makes_the_pipeline_retry_until_the_slot_is_free(api, more_sites, monkeypatch, reported_failures):
    """max_concurrency 1 and another job of the same user running: no second browser opens; the worker
    reports Outreach.NoSlot and the pipeline's retry loop dispatches the target again (new token)."""
    tenant = new_pooled_tenant()
    site = more_sites[2]
    before = len(site.posts)
    monkeypatch.setattr(worker, "SLOT_WAIT_SECONDS", 0.5)
    blocker = _blocker_job(tenant, more_sites[3].url, api, "0 seconds")
    task = _create(api, tenant, [site.url])
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers).raise_for_status()
    wait_until(lambda: list(reported_failures), lambda errors: "Outreach.NoSlot" in errors, 60,
               "the worker never reported its slot busy")
    assert len(site.posts) == before and _targets(api, tenant, task["id"])[0]["status"] != "submitted"
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE browser_jobs SET state = 'done', ended_at = now() WHERE id = %s", (blocker,))
    done = wait_task(api, tenant, task["id"], ("completed",))
    assert done["summary"] == {"total": 1, "submitted": 1} and len(site.posts) == before + 1
    assert "Outreach.NoSlot" in reported_failures


def test_a_stuck_browser_job_times_out_and_frees_its_slot(api, more_sites):
    tenant = new_pooled_tenant()
    site = more_sites[4]
    stuck = _blocker_job(tenant, more_sites[5].url, api, "1 hour")
    task = _create(api, tenant, [site.url])
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    assert wait_task(api, tenant, task["id"], ("completed",))["summary"] == {"total": 1, "submitted": 1}
    with db.tenant_transaction(tenant.tenant_id) as conn:
        row = conn.execute("SELECT state, error FROM browser_jobs WHERE id = %s", (stuck,)).fetchone()
    assert row == {"state": "timed_out", "error": "no heartbeat"}


def test_outside_the_send_window_nothing_is_sent_and_the_task_pauses_until_started_again(api, more_sites):
    tenant = new_pooled_tenant()
    site = more_sites[5]
    today = datetime.now(ZoneInfo("Asia/Tokyo")).weekday()
    closed = {"days": [d for d in range(7) if d != today], "start": "00:00", "end": "23:59",
              "timezone": "Asia/Tokyo"}
    before = len(site.posts)
    task = _create(api, tenant, [site.url], send_window=closed)
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    paused = wait_task(api, tenant, task["id"], ("paused", "completed"))
    assert paused["status"] == "paused" and paused["summary"] == {"total": 1, "pending": 1}
    [target] = _targets(api, tenant, task["id"])
    assert target["result_summary"].startswith("deferred: outside the send window")
    assert len(site.posts) == before
    with db.tenant_transaction(tenant.tenant_id) as conn:
        note = conn.execute("SELECT title FROM notifications WHERE related_entity_id = %s", (task["id"],)).fetchone()
    assert "deferred" in note["title"]


def test_the_daily_cap_holds_with_two_workers_at_once(api, more_sites):
    tenant = new_pooled_tenant()
    chosen = [more_sites[1], more_sites[6]]
    before = [len(s.posts) for s in chosen]
    task = _create(api, tenant, [s.url for s in chosen], daily_cap=1)
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    paused = wait_task(api, tenant, task["id"], ("paused", "completed"))
    assert paused["status"] == "paused" and paused["summary"] == {"total": 2, "submitted": 1, "pending": 1}
    assert sum(len(s.posts) - b for s, b in zip(chosen, before, strict=True)) == 1
    deferred = [t for t in _targets(api, tenant, task["id"]) if t["status"] == "pending"]
    assert "daily cap of 1" in deferred[0]["result_summary"]


def test_pausing_stops_dispatching_before_the_next_target(api, more_sites, monkeypatch):
    """Pause while the first browser job runs: no further form is opened until the task is started again."""
    tenant = new_pooled_tenant()
    chosen = more_sites[2:5]
    before = [len(s.posts) for s in chosen]
    with db.tenant_transaction(tenant.tenant_id) as conn:
        conn.execute("UPDATE users SET max_concurrency = 1 WHERE id = %s", (tenant.owner_id,))
    task = _create(api, tenant, [s.url for s in chosen])
    started, release = threading.Event(), threading.Event()
    real = worker._engine

    def slow_engine():  # hold the first job open until the test has paused the task
        started.set()
        release.wait(30)
        return real()

    monkeypatch.setattr(worker, "_engine", slow_engine)
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    assert started.wait(30)
    assert api.post(f"/v1/tasks/{task['id']}/pause", headers=tenant.headers).json()["status"] == "paused"
    release.set()
    monkeypatch.setattr(worker, "_engine", real)
    with db.tenant_transaction(tenant.tenant_id) as conn:
        run_id = conn.execute("SELECT run_id FROM tasks WHERE id = %s", (task["id"],)).fetchone()["run_id"]
    wait_until(lambda: run_status(tenant, run_id), lambda status: status != "running", 60,
               "the paused task's run still running")
    sent = sum(len(s.posts) - b for s, b in zip(chosen, before, strict=True))
    assert sent <= 2, sent  # the job(s) already in flight may finish; nothing new is dispatched
    summary = api.get(f"/v1/tasks/{task['id']}", headers=tenant.headers).json()["summary"]
    assert summary.get("pending", 0) == 3 - sent
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    assert wait_task(api, tenant, task["id"], ("completed",))["summary"] == {"total": 3, "submitted": 3}
    assert [len(s.posts) - b for s, b in zip(chosen, before, strict=True)] == [1, 1, 1]


def test_ai_personalisation_continues_across_calls_and_never_personalises_a_target_twice(
        runtime, api, more_sites, monkeypatch):
    from funnel.outreach import pipeline

    tenant = new_pooled_tenant()
    assert api.put("/v1/llm/step-defaults/personalize_message", headers=tenant.headers,
                   json={"provider_id": "offline", "model_class": "standard"}).status_code == 200
    template = api.post("/v1/templates", headers=tenant.headers,
                        json={"title": "AI", "body": MESSAGE, "ai_mode": True}).json()
    monkeypatch.setattr(pipeline, "PREPARE_BUDGET_SECONDS", 0.0)  # one LLM call per Lambda invocation
    chosen = more_sites[4:7]
    response = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": "ai-many", "mode": "review", "sender": SENDER, "template_id": template["id"],
        "urls": [s.url for s in chosen], "recontact_days": 0})
    task = response.json()
    api.post(f"/v1/tasks/{task['id']}/start", headers=tenant.headers)
    reviewed = wait_task(api, tenant, task["id"], ("review", "failed", "completed"))
    assert reviewed["status"] == "review" and reviewed["summary"] == {"total": 3, "review": 3}
    for target in _targets(api, tenant, task["id"]):
        assert target["message"].count("[offline model") == 1
    with db.tenant_transaction(tenant.tenant_id) as conn:
        counts = conn.execute("SELECT task_target_id, count(*) AS n FROM ai_runs GROUP BY 1").fetchall()
        arn = conn.execute("SELECT execution_arn FROM runs WHERE id = %s",
                           (reviewed["run_id"],)).fetchone()["execution_arn"]
    assert sorted(r["n"] for r in counts) == [1, 1, 1]
    events = runtime.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    assert entered.count("PrepareMore") == 2
