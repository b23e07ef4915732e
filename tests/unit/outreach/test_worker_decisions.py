"""The browser worker's decisions, over the in-memory fake store (conftest.py) and a fake form engine: browser
slots per user (``NoSlot`` once ``max_concurrency`` jobs run; silent jobs time out), the daily cap under the
tenant's lock (``Deferred``), the single submission claim, and what ``process`` does with a target: skip it,
leave it for later, record a crash's submission without clicking again, retry a failed attempt
(``RetryLater``) until the last one fails it, or record the form's outcome and the sent history."""
from __future__ import annotations

import pytest

from funnel.outreach import worker
from funnel.outreach.forms.model import FieldFill, FormResult, Status
from tests.unit.outreach.fake_store import TENANT, USER


class FakeEngine:
    """Stands in for the warm FormEngine: answers ``outcome`` (a FormResult, or an exception to raise)."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.calls = []

    def submit(self, url, sender, message, subject, *, dry_run, before_submit):
        self.calls.append({"url": url, "sender": sender, "message": message, "dry_run": dry_run})
        if isinstance(self.outcome, Exception):
            raise self.outcome
        if self.outcome.status == Status.SUBMITTED and not before_submit():
            return FormResult(status=Status.ABORTED, message="aborted")
        return self.outcome


@pytest.fixture
def engine(monkeypatch):
    def install(outcome):
        fake = FakeEngine(outcome)
        monkeypatch.setattr(worker, "_engine", lambda: fake)
        monkeypatch.setattr(worker, "_store_screenshots", lambda tenant_id, run_id, target_id, paths: list(paths))
        monkeypatch.setattr(worker, "_store_fields", lambda tenant_id, run_id, target_id, fields: None)
        return fake
    return install


SUBMITTED = FormResult(status=Status.SUBMITTED, message="thank you", screenshots=["s.png"],
                       fields=[FieldFill(name="email", semantic="email", value="me@us.example")])


# ---------------------------------------------------------------- slots

def test_a_free_slot_is_claimed_under_the_users_lock(outreach_store):
    job_id = worker._try_claim_slot(TENANT, {"id": "target-1"}, USER)
    assert outreach_store.locks == [f"browser-slots:{USER}"]
    job = outreach_store.jobs[job_id]
    assert (job["state"], job["task_target_id"]) == ("running", "target-1")


def test_a_user_running_max_concurrency_jobs_gets_no_slot(outreach_store):
    outreach_store.users[USER] = 2
    outreach_store.add_job(state="running")
    outreach_store.add_job(state="submitting")
    outreach_store.add_job(user_id="someone-else")  # other users' jobs take none of this user's slots
    with pytest.raises(worker.NoSlot, match="already runs 2 browser jobs"):
        worker._try_claim_slot(TENANT, {"id": "target-1"}, USER)


def test_a_job_without_a_heartbeat_for_ten_minutes_is_timed_out_and_frees_its_slot(outreach_store):
    outreach_store.users[USER] = 1
    stuck = outreach_store.add_job(heartbeat_age=worker.STUCK_AFTER_SECONDS + 1)
    worker._try_claim_slot(TENANT, {"id": "target-1"}, USER)
    assert outreach_store.jobs[stuck]["state"] == "timed_out"


def test_a_user_who_is_gone_has_one_slot(outreach_store):
    outreach_store.users.clear()
    worker._try_claim_slot(TENANT, {"id": "target-1"}, USER)
    with pytest.raises(worker.NoSlot):
        worker._try_claim_slot(TENANT, {"id": "target-2"}, USER)


def test_the_daily_cap_counts_todays_submissions_plus_the_jobs_in_flight_under_the_tenants_lock(outreach_store):
    cap = {"limit": 2, "timezone": "Asia/Tokyo"}
    outreach_store.record_sent(None, "one.example.com", None, "t")
    outreach_store.add_job(user_id="someone-else")  # in flight for the tenant: it may submit today too
    with pytest.raises(worker.Deferred, match="the daily cap of 2 submissions is reached"):
        worker._try_claim_slot(TENANT, {"id": "target-1"}, USER, cap)
    assert outreach_store.locks == [f"browser-slots:{USER}", f"daily-cap:{TENANT}"]
    for job in outreach_store.jobs.values():
        job["heartbeat_age"] = worker.STUCK_AFTER_SECONDS + 1  # silent: no longer counted as in flight
    assert worker._try_claim_slot(TENANT, {"id": "target-1"}, USER, cap)


def test_a_busy_user_waits_for_a_slot_up_to_the_slot_wait_then_gets_no_slot(outreach_store, monkeypatch):
    outreach_store.users[USER] = 1
    busy = outreach_store.add_job()
    monkeypatch.setattr(worker, "SLOT_WAIT_SECONDS", 0.0)
    with pytest.raises(worker.NoSlot):
        worker._claim_slot(TENANT, {"id": "target-1"}, USER)
    monkeypatch.setattr(worker, "SLOT_WAIT_SECONDS", 60.0)
    monkeypatch.setattr(worker.time, "sleep", lambda seconds: outreach_store.end_job(None, busy, "done"))
    assert worker._claim_slot(TENANT, {"id": "target-1"}, USER) != busy  # the slot freed while it waited


def test_only_one_job_of_a_target_claims_its_submission(outreach_store):
    first = outreach_store.add_job(target_id="target-1")
    second = outreach_store.add_job(target_id="target-1")
    assert worker._claim_submission(TENANT, first) is True
    assert worker._claim_submission(TENANT, second) is False
    assert outreach_store.jobs[second]["state"] == "running"


# ---------------------------------------------------------------- process

def _task(store, **settings):
    task = store.add_task(status="running", settings={"sender": {"company": "Us", "email": "me@us.example"},
                                                      **settings})
    return task, store.add_target(task)


def _process(task, target, phase="auto"):
    return worker.process(TENANT, task["id"], target["id"], phase)


def test_a_target_or_task_that_is_gone_is_skipped(outreach_store, engine):
    task, target = _task(outreach_store)
    assert worker.process(TENANT, task["id"], "nope", "auto") == {"target_id": "nope", "status": "skipped",
                                                                  "reason": "gone"}


@pytest.mark.parametrize("status", ["paused", "cancelled"])
def test_a_paused_or_cancelled_tasks_target_is_left_as_it_is(outreach_store, engine, status):
    fake = engine(SUBMITTED)
    task, target = _task(outreach_store)
    outreach_store.tasks[task["id"]]["status"] = status
    assert _process(task, target) == {"target_id": target["id"], "status": "pending", "reason": f"task {status}"}
    assert fake.calls == [] and outreach_store.targets[target["id"]]["status"] == "pending"


def test_a_target_whose_submission_was_claimed_before_a_crash_is_submitted_without_opening_the_form(
        outreach_store, engine):
    fake = engine(SUBMITTED)
    task, target = _task(outreach_store)
    outreach_store.add_job(target_id=target["id"], state="submitting")
    assert _process(task, target) == {"target_id": target["id"], "status": "submitted",
                                      "reason": "already submitted"}
    assert fake.calls == []
    assert outreach_store.targets[target["id"]]["result_summary"] == "submitted before a worker crash; not sent again"


@pytest.mark.parametrize("status", ["submitted", "captcha", "refused", "no_form", "skipped", "rejected", "review",
                                    "failed"])
def test_a_target_with_an_outcome_is_never_run_again(outreach_store, engine, status):
    fake = engine(SUBMITTED)
    task, target = _task(outreach_store)
    outreach_store.targets[target["id"]]["status"] = status
    assert _process(task, target) == {"target_id": target["id"], "status": status}
    assert fake.calls == []


def test_a_deferred_target_stays_pending_with_the_reason(outreach_store, engine):
    fake = engine(SUBMITTED)
    task, target = _task(outreach_store, daily_cap=1)
    outreach_store.record_sent(None, "one.example.com", None, "t")
    assert _process(task, target) == {"target_id": target["id"], "status": "pending",
                                      "reason": "the daily cap of 1 submissions is reached"}
    row = outreach_store.targets[target["id"]]
    assert (row["status"], row["result_summary"]) == ("pending", "deferred: the daily cap of 1 submissions is reached")
    assert fake.calls == [] and outreach_store.jobs == {}


def test_a_target_over_the_plans_form_sends_is_deferred_and_no_form_is_opened(outreach_store, engine):
    fake = engine(SUBMITTED)
    task, target = _task(outreach_store)
    outreach_store.form_sends_left = 0
    result = _process(task, target)
    assert result["status"] == "pending" and "form_sends" in result["reason"]
    assert outreach_store.targets[target["id"]]["result_summary"].startswith("deferred: the plan's form_sends")
    assert fake.calls == [] and outreach_store.jobs == {}


@pytest.mark.parametrize("outcome, kept", [
    (SUBMITTED, 1),
    (FormResult(status=Status.CAPTCHA, message="a CAPTCHA"), 0),
    (FormResult(status=Status.NO_FORM, message="no contact form"), 0),
    (RuntimeError("the browser crashed"), 0),
])
def test_only_a_submitted_form_keeps_the_form_send_it_took(outreach_store, engine, outcome, kept):
    engine(outcome)
    task, target = _task(outreach_store)
    outreach_store.form_sends_left = 5
    try:
        _process(task, target)
    except worker.RetryLater:
        pass
    assert outreach_store.form_sends_taken == kept and outreach_store.form_sends_left == 5 - kept


def test_a_target_of_a_subscription_that_stopped_is_deferred_with_the_reason(outreach_store, engine):
    fake = engine(SUBMITTED)
    task, target = _task(outreach_store)
    outreach_store.subscription_refusal = "the subscription is canceled: update billing to send and generate"
    result = _process(task, target)
    assert result["status"] == "pending" and result["reason"].startswith("the subscription is canceled")
    assert fake.calls == [] and outreach_store.form_sends_taken == 0


def test_a_review_run_takes_no_form_send(outreach_store, engine):
    engine(FormResult(status=Status.READY, message="confirm screen reached"))
    task, target = _task(outreach_store)
    outreach_store.form_sends_left = 0  # used up: a review still fills the form, the submitting run is refused
    assert _process(task, target, phase="review")["status"] == "review"
    assert outreach_store.form_sends_taken == 0


def test_a_target_the_cap_defers_once_its_slot_is_counted_goes_back_to_where_it_was(outreach_store, engine):
    fake = engine(SUBMITTED)
    task, target = _task(outreach_store, daily_cap=1)
    outreach_store.add_job(user_id="someone-else")  # in flight: the pre-check passes, the locked count does not
    result = _process(task, target)
    assert result["status"] == "pending" and "daily cap" in result["reason"]
    assert outreach_store.targets[target["id"]]["status"] == "pending" and fake.calls == []


def test_a_review_run_fills_the_form_without_the_send_checks_and_waits_for_review(outreach_store, engine):
    fake = engine(FormResult(status=Status.READY, message="confirm screen reached"))
    task, target = _task(outreach_store, daily_cap=1)
    outreach_store.record_sent(None, "one.example.com", None, "t")
    outreach_store.suppressed = {"domain": {"a.example.com"}}  # checked again before the submitting run
    assert _process(task, target, phase="review") == {"target_id": target["id"], "status": "review"}
    assert fake.calls[0]["dry_run"] is True
    assert outreach_store.sent[-1]["domain"] == "one.example.com"  # nothing sent


def test_a_submitted_form_records_the_outcome_the_sent_history_and_the_runs_progress(outreach_store, engine):
    engine(SUBMITTED)
    task, target = _task(outreach_store)
    assert _process(task, target) == {"target_id": target["id"], "status": "submitted"}
    row = outreach_store.targets[target["id"]]
    assert (row["status"], row["result_summary"], row["screenshots"]) == ("submitted", "thank you", ["s.png"])
    assert row["fields"] == [{"name": "email", "semantic": "email", "value": "me@us.example"}]
    assert [s["domain"] for s in outreach_store.sent] == ["a.example.com"]
    assert [j["state"] for j in outreach_store.jobs.values()] == ["submitted"]
    assert outreach_store.steps_done == 1


def test_a_form_another_job_claimed_meanwhile_is_recorded_as_submitted_but_not_sent_again(outreach_store, engine,
                                                                                         monkeypatch):
    engine(SUBMITTED)
    task, target = _task(outreach_store)
    real_claim = worker._claim_slot

    def claim_then_lose_the_race(*args, **kwargs):
        job_id = real_claim(*args, **kwargs)
        outreach_store.add_job(target_id=target["id"], state="submitting")
        return job_id

    monkeypatch.setattr(worker, "_claim_slot", claim_then_lose_the_race)
    assert _process(task, target)["status"] == "submitted"
    assert outreach_store.targets[target["id"]]["result_summary"] == "submitted by an earlier attempt; not sent again"
    assert outreach_store.sent == []


def test_a_failed_attempt_is_retried_until_the_last_attempt_fails_the_target(outreach_store, engine):
    engine(RuntimeError("page crashed"))
    task, target = _task(outreach_store)
    for attempt in range(1, worker.MAX_ATTEMPTS):
        with pytest.raises(worker.RetryLater, match=f"attempt {attempt} of {worker.MAX_ATTEMPTS} failed: page crashed"):
            _process(task, target)
        assert outreach_store.targets[target["id"]]["status"] == "pending"
    assert _process(task, target) == {"target_id": target["id"], "status": "failed", "reason": "page crashed"}
    assert outreach_store.targets[target["id"]]["retry_count"] == worker.MAX_ATTEMPTS
    assert {j["state"] for j in outreach_store.jobs.values()} == {"failed"}  # every slot freed


def test_no_free_slot_goes_back_to_the_pipeline_to_retry_later(outreach_store, engine, monkeypatch):
    fake = engine(SUBMITTED)
    monkeypatch.setattr(worker, "SLOT_WAIT_SECONDS", 0.0)
    outreach_store.users[USER] = 1
    outreach_store.add_job()
    task, target = _task(outreach_store)
    with pytest.raises(worker.NoSlot):
        _process(task, target)
    assert fake.calls == []
