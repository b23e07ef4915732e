"""Send tasks' rules over the in-memory fake store (conftest.py): targets (one per domain, the first wins;
skipped with the reason when suppressed or recently contacted; messages rendered per target), which phase a
start sends and the states it may start from, a start Step Functions refuses, pause/resume/cancel/review, and
the send pipeline's steps (what Prepare queues and personalises, what status Finalize leaves the task in)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from funnel.outreach import pipeline, tasks
from funnel.platform import runs
from funnel.platform.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed, WorkspaceUnverified
from funnel.platform.principal import Principal
from funnel.platform.ssrf import UnsafeUrlError
from tests.unit.outreach.fake_store import TENANT, USER

WRITER = Principal(TENANT, USER, "member")
SENDER = {"company": "Us Inc.", "last_name": "Sato", "first_name": "Ken", "email": "ken@us.example"}
UNSAFE_HOSTS = {"internal.example.com"}


class FakeStepFunctions:
    def __init__(self, error=None):
        self.error, self.started = error, []

    def start_execution(self, **request):
        if self.error:
            raise self.error
        self.started.append(request)
        return {"executionArn": f"arn:execution:{len(self.started)}"}


@pytest.fixture
def platform(outreach_store, monkeypatch):
    """Runs, Step Functions, notifications, the SSRF guard and the LLM faked; ``platform.runs`` lists run changes."""
    class Platform:
        runs: list[tuple] = []
        notified: list[dict] = []
        stepfunctions = FakeStepFunctions()
        completions: list[str] = []

    fake = Platform()
    fake.runs, fake.notified, fake.completions, fake.files = [], [], [], {}

    def write_file(conn, tenant_id, run_id, step, name, body, content_type, **kwargs):
        key = f"storage/{tenant_id}/{run_id}/{step}/artifacts/{name}"
        fake.files[key] = body
        return {"file_path": key}

    def check_url(url, allow):
        if any(host in url for host in UNSAFE_HOSTS):
            raise UnsafeUrlError("resolves to a private address")

    monkeypatch.setattr(tasks, "check_url", check_url)
    monkeypatch.setattr(tasks, "_stepfunctions", lambda: fake.stepfunctions)
    monkeypatch.setattr(runs, "create_run", lambda conn, kind, config, user, total: fake.runs.append(
        ("create", kind, config, total)) or {"id": "run-2"})
    monkeypatch.setattr(runs, "update_run", lambda conn, run_id, **changes: fake.runs.append(
        ("update", run_id, changes)))
    monkeypatch.setattr(runs, "write_file", write_file)
    monkeypatch.setattr(tasks.storage, "presigned_url", lambda key, expires_in: f"https://signed/{key}?ttl={expires_in}")
    for step in ("start_step", "complete_step", "fail_step"):
        monkeypatch.setattr(runs, step, lambda conn, run_id, name, *args, _step=step, **kwargs: fake.runs.append(
            (_step, run_id, name)))
    monkeypatch.setattr(pipeline, "notify", lambda tenant_id, **notification: fake.notified.append(notification))
    monkeypatch.setattr(pipeline, "dispatch_pending", lambda tenant_id: None)
    monkeypatch.setattr(pipeline, "_site_text", lambda url: f"the site of {url}")

    class Completion:
        def __init__(self, text):
            self.text, self.model, self.prompt_tokens, self.completion_tokens = text, "m", 1, 1
            self.cost_usd, self.offline = 0.0, True

    def complete(step, messages, **kwargs):
        fake.completions.append(messages[1]["content"])
        return Completion(f"personalised for {messages[1]['content'].splitlines()[0]}")

    monkeypatch.setattr(pipeline.llm, "complete", complete)
    return fake


def _create(**fields):
    return tasks.create_task(WRITER, **{"name": "t", "mode": "auto", "sender": SENDER,
                                        "message": "{{company_name}} {{contact_person}}様 from {{sender_name}}",
                                        "subject": None, "template_id": None, "contact_ids": [], "urls": [],
                                        "settings": {"recontact_days": 180}, **fields})


def _contact(store, host, **fields):
    values = {"company_name": host.split(".")[0].title(), "default_url": f"https://{host}/", "domain": host,
              "default_contact_person": None, "email": None, "phone": None, "corporate_number": None,
              "industry": None, **fields}
    return store.insert_contact(None, USER, values, {})["id"]


# ---------------------------------------------------------------- creating a task

def test_one_target_per_domain_the_first_wins_and_messages_are_rendered_per_target(outreach_store, platform):
    alpha = _contact(outreach_store, "alpha.example.com", default_contact_person="Tanaka")
    task = _create(contact_ids=[alpha], urls=["https://www.alpha.example.com/contact", "beta.example.com",
                                              "https://beta.example.com/other"])
    targets = outreach_store.list_targets(None, task["id"], None)
    assert [(t["domain"], t["target_url"], t["contact_id"]) for t in targets] == [
        ("alpha.example.com", "https://alpha.example.com/", alpha),
        ("beta.example.com", "https://beta.example.com/", None)]
    assert [t["message"] for t in targets] == ["Alpha Tanaka様 from Sato Ken", "beta.example.com 様 from Sato Ken"]
    assert {t["status"] for t in targets} == {"pending"}
    assert task["settings"]["sender"] == SENDER and task["settings"]["ai_mode"] is False
    assert outreach_store.audit == ["task.create"]


def test_suppressed_and_recently_contacted_targets_are_created_skipped_with_the_reason(outreach_store, platform):
    blocked = _contact(outreach_store, "blocked.example.com", email="ceo@blocked.example.com")
    outreach_store.suppressed = {"email": {"ceo@blocked.example.com"}}
    outreach_store.contacted_domains = {"recent.example.com"}
    task = _create(contact_ids=[blocked], urls=["recent.example.com", "fresh.example.com"])
    assert [(t["domain"], t["status"], t["result_summary"]) for t in outreach_store.list_targets(None, task["id"], None)
            ] == [("blocked.example.com", "skipped", "email on the do-not-contact list (do_not_contact)"),
                  ("recent.example.com", "skipped", "recent.example.com was contacted within 180 days"),
                  ("fresh.example.com", "pending", None)]


@pytest.mark.parametrize(("fields", "problem"), [
    ({}, "at least one target"),
    ({"urls": ["a.example.com"], "sender": {"company": "Us"}}, "the sender profile needs"),
    ({"urls": ["a.example.com"], "message": None}, "a message or a template_id"),
    ({"urls": ["a.example.com"], "message": "{{budget}}"}, "unknown variables"),
    ({"contact_ids": ["00000000-0000-4000-8000-000000000000"]}, "not contacts of this workspace"),
    ({"urls": ["https://internal.example.com/"]}, "private address"),
])
def test_a_task_that_cannot_be_sent_is_refused_whole(outreach_store, platform, fields, problem):
    with pytest.raises(ValidationFailed, match=problem):
        _create(**fields)
    assert outreach_store.tasks == {} and outreach_store.targets == {}


def test_a_contact_without_a_url_cannot_be_a_target(outreach_store, platform):
    nowhere = _contact(outreach_store, "x.example.com", default_url=None, domain=None, company_name="Nowhere")
    with pytest.raises(ValidationFailed, match="contact Nowhere has no URL"):
        _create(contact_ids=[nowhere])


# ---------------------------------------------------------------- starting, pausing, cancelling, reviewing

def _task(store, mode="auto", status="draft", targets=("pending",)):
    task = store.add_task(mode=mode, status=status, started_at=None)
    for status_ in targets:
        store.add_target(task, status=status_)
    return task


@pytest.mark.parametrize(("mode", "status", "targets", "phase", "sent"), [
    ("auto", "draft", ("pending", "skipped"), "auto", 1),
    ("auto", "paused", ("submitted", "pending", "pending"), "auto", 2),
    ("review", "draft", ("pending",), "review", 1),
    ("review", "review", ("approved", "approved", "rejected"), "submit", 2),
    ("review", "paused", ("approved", "submitted"), "submit", 1),  # paused while sending its approved targets
    ("review", "paused", ("pending", "review"), "review", 1),      # paused before its review was complete
])
def test_a_start_sends_the_phase_the_task_is_in(outreach_store, platform, mode, status, targets, phase, sent):
    task = _task(outreach_store, mode, status, targets)
    started = tasks.start(WRITER, task["id"])
    assert started["status"] == "running" and started["run_id"] == "run-2"
    assert platform.runs[0] == ("create", "send_pipeline", {"task_id": task["id"], "phase": phase}, sent)
    assert json.loads(platform.stepfunctions.started[0]["input"]) == {
        "tenant_id": TENANT, "task_id": task["id"], "run_id": "run-2", "phase": phase}
    assert platform.runs[-1] == ("update", "run-2", {"status": "running", "execution_arn": "arn:execution:1"})


@pytest.mark.parametrize("status", ["running", "completed", "cancelled"])
def test_a_running_completed_or_cancelled_task_cannot_be_started(outreach_store, platform, status):
    with pytest.raises(Conflict, match=f"a {status} task cannot be started"):
        tasks.start(WRITER, _task(outreach_store, status=status)["id"])


def test_a_task_with_nothing_to_send_cannot_be_started(outreach_store, platform):
    with pytest.raises(Conflict, match="no pending targets to send"):
        tasks.start(WRITER, _task(outreach_store, targets=("skipped", "submitted"))["id"])
    with pytest.raises(Conflict, match="no approved targets to send"):
        tasks.start(WRITER, _task(outreach_store, "review", "review", ("rejected",))["id"])


def test_a_start_step_functions_refuses_puts_the_task_back_and_fails_its_run(outreach_store, platform):
    platform.stepfunctions = FakeStepFunctions(error=RuntimeError("connection refused"))
    task = _task(outreach_store, status="paused")
    outreach_store.tasks[task["id"]]["started_at"] = "yesterday"
    with pytest.raises(ServiceUnavailable, match="nothing was sent"):
        tasks.start(WRITER, task["id"])
    assert (outreach_store.tasks[task["id"]]["status"], outreach_store.tasks[task["id"]]["started_at"]) == (
        "paused", "yesterday")
    assert platform.runs[-1] == ("update", "run-2", {
        "status": "failed", "error_message": "could not start the send pipeline: connection refused"})


def test_an_unverified_workspace_starts_no_task(outreach_store, platform):
    outreach_store.directory.unverified.add(TENANT)
    platform.stepfunctions = FakeStepFunctions()
    task = _task(outreach_store)
    audited = list(outreach_store.audit)
    with pytest.raises(WorkspaceUnverified, match="verify the owner's e-mail address"):
        tasks.start(WRITER, task["id"])
    assert outreach_store.tasks[task["id"]]["status"] == "draft"
    assert not platform.stepfunctions.started and not platform.runs and outreach_store.audit == audited


def test_only_a_paused_task_resumes_only_a_running_one_pauses(outreach_store, platform):
    draft = _task(outreach_store)
    with pytest.raises(Conflict, match="a draft task cannot be resumed"):
        tasks.resume(WRITER, draft["id"])
    with pytest.raises(Conflict, match="a draft task cannot be paused"):
        tasks.pause(WRITER, draft["id"])
    running = _task(outreach_store, status="running")
    assert tasks.pause(WRITER, running["id"])["status"] == "paused"
    assert tasks.resume(WRITER, running["id"])["status"] == "running"


def test_cancelling_skips_every_target_not_sent_yet(outreach_store, platform):
    task = _task(outreach_store, status="running", targets=("pending", "queued", "approved", "review", "running",
                                                             "submitted"))
    assert tasks.cancel(WRITER, task["id"])["status"] == "cancelled"
    assert sorted(outreach_store.target_counts(None, task["id"]).items()) == [("running", 1), ("skipped", 4),
                                                                              ("submitted", 1)]
    with pytest.raises(Conflict, match="a cancelled task cannot be cancelled"):
        tasks.cancel(WRITER, task["id"])


def test_only_a_target_waiting_for_review_is_approved_or_rejected(outreach_store, platform):
    task = _task(outreach_store, "review", "review", ("review", "pending"))
    waiting, pending = outreach_store.list_targets(None, task["id"], None)
    assert tasks.review_target(WRITER, task["id"], waiting["id"], approve=True)["status"] == "approved"
    for target in (waiting, pending):
        with pytest.raises(Conflict, match="only a target waiting for review"):
            tasks.review_target(WRITER, task["id"], target["id"], approve=False)
    assert outreach_store.audit == ["task_target.approve"]


def test_a_reviewer_edits_the_subject_and_message_only_while_the_target_waits_for_review(outreach_store, platform):
    task = _task(outreach_store, "review", "review", ("review", "approved"))
    waiting, approved = outreach_store.list_targets(None, task["id"], None)
    edited = tasks.edit_target(WRITER, task["id"], waiting["id"], {"subject": "Re: hello", "message": "Dear A"})
    assert (edited["subject"], edited["message"], edited["status"]) == ("Re: hello", "Dear A", "review")
    assert tasks.edit_target(WRITER, task["id"], waiting["id"], {"subject": None})["message"] == "Dear A"
    assert outreach_store.targets[waiting["id"]]["subject"] is None
    with pytest.raises(Conflict, match="only a target waiting for review can be edited"):
        tasks.edit_target(WRITER, task["id"], approved["id"], {"message": "too late"})
    with pytest.raises(NotFound, match="target not found"):
        tasks.edit_target(WRITER, task["id"], "00000000-0000-4000-8000-000000000000", {"message": "x"})
    with pytest.raises(ValidationFailed, match="change the subject or the message"):
        tasks.edit_target(WRITER, task["id"], waiting["id"], {})
    assert outreach_store.targets[approved["id"]]["message"] == "hello"
    assert outreach_store.audit == ["task_target.edit", "task_target.edit"]


def test_targets_are_shown_with_signed_links_to_their_files_and_their_ai_runs(outreach_store, platform):
    task = _task(outreach_store, "review", "review", ("review", "pending"))
    filled, untouched = outreach_store.list_targets(None, task["id"], None)
    outreach_store.targets[filled["id"]].update(screenshots=["storage/t/r/browser-x/artifacts/0-form.png"],
                                                fields_file="storage/t/r/browser-x/artifacts/fields.json")
    outreach_store.insert_ai_run(None, filled["id"], pipeline.PERSONALIZE_STEP, model="m", prompt_tokens=120,
                                 completion_tokens=80, cost_estimate=0.0015)
    shown = {t["id"]: t for t in tasks._shown(None, outreach_store.list_targets(None, task["id"], None))}
    [shot] = shown[filled["id"]]["screenshots"]
    assert (shot["name"], shot["url"]) == ("0-form.png", "https://signed/storage/t/r/browser-x/artifacts/0-form.png"
                                                         "?ttl=900")
    assert shown[filled["id"]]["fields_file"]["name"] == "fields.json" and shot["expires_at"] > datetime.now(UTC)
    [run] = shown[filled["id"]]["ai_runs"]
    assert (run["step"], run["prompt_tokens"], run["completion_tokens"], run["cost_estimate"]) == (
        "personalize_message", 120, 80, 0.0015)
    assert (shown[untouched["id"]]["screenshots"], shown[untouched["id"]]["fields_file"],
            shown[untouched["id"]]["ai_runs"]) == ([], None, [])
    assert tasks.llm_usage(None, task["id"]) == {"runs": 1, "prompt_tokens": 120, "completion_tokens": 80,
                                                 "cost_estimate": 0.0015}


# ---------------------------------------------------------------- the send pipeline's steps

def _event(task, phase="auto"):
    return {"tenant_id": TENANT, "task_id": task["id"], "run_id": "run-2", "phase": phase}


def test_prepare_queues_the_phases_targets_and_passes_on_where_their_ids_are(outreach_store, platform):
    task = _task(outreach_store, "review", "running", ("approved", "rejected", "approved"))
    prepared = pipeline.prepare(_event(task, "submit"))
    approved = [t["id"] for t in outreach_store.list_targets(None, task["id"], "queued")]
    key = f"storage/{TENANT}/run-2/prepare/artifacts/targets.json"
    assert prepared == {**_event(task, "submit"), "more": False, "targets": {"key": key, "count": 2}}
    assert json.loads(platform.files[key]) == approved and len(approved) == 2  # the state carries no ids
    assert platform.completions == []  # not AI mode


def test_ai_mode_personalises_each_target_once_and_hands_over_when_the_budget_is_spent(
        outreach_store, platform, monkeypatch):
    task = _task(outreach_store, status="running", targets=("pending", "pending", "pending"))
    outreach_store.tasks[task["id"]]["settings"]["ai_mode"] = True
    first = outreach_store.list_targets(None, task["id"], None)[0]
    outreach_store.insert_ai_run(None, first["id"], pipeline.PERSONALIZE_STEP)  # by an earlier run of the task
    monkeypatch.setattr(pipeline, "PREPARE_BUDGET_SECONDS", 0.0)
    handed_over = pipeline.prepare(_event(task))
    assert (handed_over["more"], handed_over["personalized"], handed_over["remaining"]) == (True, 1, 1)
    assert pipeline.prepare_more(handed_over)["more"] is False
    assert len(platform.completions) == 2 and len({run["target_id"] for run in outreach_store.ai_runs}) == 3
    assert outreach_store.targets[first["id"]]["message"] == "hello"  # never rewritten twice
    assert all(t["message"].startswith("personalised for Company: A")
               for t in outreach_store.list_targets(None, task["id"], None) if t["id"] != first["id"])


@pytest.mark.parametrize(("phase", "targets", "status", "notified"), [
    ("auto", ("submitted", "failed", "skipped"), "completed", "task_finished"),
    ("auto", ("submitted", "pending"), "paused", 'Send task "t" paused: 1 targets deferred'),
    ("review", ("review", "review", "skipped"), "review", 'Send task "t" is ready for review: 2 forms filled'),
    ("submit", ("submitted", "approved"), "paused", 'Send task "t" paused: 1 targets deferred'),
    ("auto", ("submitted", "queued"), "paused", 'Send task "t" paused: 1 targets deferred'),  # never dispatched
])
def test_finalize_completes_pauses_with_deferred_targets_or_waits_for_review(outreach_store, platform, phase,
                                                                             targets, status, notified):
    task = _task(outreach_store, "review" if phase != "auto" else "auto", "running", targets)
    assert pipeline.finalize(_event(task, phase))["status"] == status
    assert outreach_store.tasks[task["id"]]["status"] == status
    assert platform.runs[-1] == ("update", "run-2", {"status": "paused" if status == "paused" else "completed"})
    assert [n.get("template_id") or n["title"] for n in platform.notified] == [notified]
    assert not outreach_store.list_targets(None, task["id"], "queued")


def test_finalize_leaves_a_task_paused_or_cancelled_meanwhile_as_it_is(outreach_store, platform):
    task = _task(outreach_store, status="cancelled", targets=("submitted", "skipped"))
    assert pipeline.finalize(_event(task))["status"] == "cancelled"
    assert platform.notified == []


def test_a_failed_prepare_fails_the_task_and_run_and_puts_queued_targets_back(outreach_store, platform):
    task = _task(outreach_store, status="running", targets=("queued", "skipped"))
    result = pipeline.prepare_failed({**_event(task), "error": {"Error": "LlmError", "Cause": "no API key"}})
    assert result == {"task_id": task["id"], "status": "failed", "error": "LlmError: no API key"}
    assert outreach_store.tasks[task["id"]]["status"] == "failed"
    assert sorted(outreach_store.target_counts(None, task["id"])) == ["pending", "skipped"]
    assert platform.runs[-1] == ("update", "run-2", {"status": "failed",
                                                     "error_message": "step prepare failed: LlmError: no API key"})
    assert platform.notified[0]["priority"] == "HIGH"


def test_a_target_the_pipeline_gave_up_on_fails_unless_it_has_an_outcome(outreach_store, platform):
    task = _task(outreach_store, status="running", targets=("running", "submitted"))
    running, submitted = outreach_store.list_targets(None, task["id"], None)
    for target in (running, submitted):
        pipeline.target_failed({**_event(task), "target_id": target["id"],
                                "error": {"Error": "States.HeartbeatTimeout", "Cause": ""}})
    assert outreach_store.targets[running["id"]]["status"] == "failed"
    assert outreach_store.targets[running["id"]]["result_summary"] == "States.HeartbeatTimeout: "
    assert outreach_store.targets[submitted["id"]]["status"] == "submitted"
