"""The browser worker's job: fill (and in auto mode submit) one target's contact form.

A target is submitted at most once, even when the worker crashes between the
submitting click and recording the result: right before the click the job
claims the target's single 'submitting' slot in ``browser_jobs`` (a unique
partial index, committed at once). A retried message that finds the claim taken
records the target as submitted (unconfirmed) and never clicks again.
Concurrency per user is bounded by ``users.max_concurrency`` running jobs; jobs
without a heartbeat for ``STUCK_AFTER_SECONDS`` are timed out and free their slot.
"""
from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from funnel import db
from funnel.billing import limits
from funnel.observability import count, logger, tracer
from funnel.outreach import safety, store_browser, store_tasks
from funnel.outreach.forms.model import SenderProfile, Status
from funnel.platform import runs
from funnel.settings import get_settings

if TYPE_CHECKING:
    from funnel.outreach.forms.engine import FormEngine

STUCK_AFTER_SECONDS = 600
FIELDS_FILE = "fields.json"  # the filled fields, beside the screenshots
MAX_ATTEMPTS = 3


SLOT_WAIT_SECONDS = 10.0
# What a finished form counts as (a review run's filled form and an aborted re-click count as nothing).
FORM_METRICS = {Status.SUBMITTED: "FormsSubmitted", Status.CAPTCHA: "FormsSkipped", Status.REFUSED: "FormsSkipped",
                Status.NO_FORM: "FormsSkipped", Status.FAILED: "FormsFailed"}


class NoSlot(Exception):
    """The user's concurrent browser jobs stayed taken for ``SLOT_WAIT_SECONDS``: the send pipeline
    tries the target again later (its retry loop on ``Outreach.NoSlot``)."""


class Deferred(Exception):
    """Sending now would exceed the tenant's daily cap: the target waits for the task's next start."""


class RetryLater(Exception):
    """This attempt failed (counted in ``task_targets.retry_count``) and attempts are left: the send
    pipeline retries the target with backoff (its retry loop on ``Outreach.Retry``)."""


_local = threading.local()


def _engine() -> FormEngine:
    """One warm browser per worker thread (Playwright's sync API is bound to its thread)."""
    from funnel.outreach.forms.engine import FormEngine  # Playwright: only where a browser really runs

    engine: FormEngine | None = getattr(_local, "engine", None)
    if engine is None:
        engine = FormEngine(allow_hosts=get_settings().ssrf_allow_hosts)
        engine.start()
        _local.engine = engine
    return engine


def close_warm_browser() -> None:
    """Close this thread's warm browser, if it has one (when its execution environment ends)."""
    engine = getattr(_local, "engine", None)
    if engine is not None:
        _local.engine = None
        engine.close()


def _claim_slot(tenant_id: str, target: dict[str, Any], user_id: str, cap: dict[str, Any] | None = None) -> str:
    """A free slot of the user's ``max_concurrency``, waiting up to ``SLOT_WAIT_SECONDS`` for one."""
    deadline = time.monotonic() + SLOT_WAIT_SECONDS
    while True:
        try:
            return _try_claim_slot(tenant_id, target, user_id, cap)
        except NoSlot:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)


def _try_claim_slot(tenant_id: str, target: dict[str, Any], user_id: str, cap: dict[str, Any] | None = None) -> str:
    """``cap`` ({"limit", "timezone"}) is checked under a tenant-wide lock counting today's submissions plus
    the jobs in flight, so two concurrent workers cannot both take the last submission of the day."""
    with db.tenant_transaction(tenant_id) as conn:
        store_browser.lock_user_slots(conn, user_id)
        if cap:
            store_browser.lock_daily_cap(conn, tenant_id)
            in_flight = store_browser.jobs_in_flight(conn, STUCK_AFTER_SECONDS)
            if store_tasks.submitted_today(conn, cap["timezone"]) + in_flight >= cap["limit"]:
                raise Deferred(safety.daily_cap_reached(cap["limit"]))
        store_browser.time_out_silent_jobs(conn, user_id, STUCK_AFTER_SECONDS)
        limit = store_browser.max_concurrency(conn, user_id)
        busy = store_browser.busy_jobs(conn, user_id)
        if busy >= (limit if limit is not None else 1):
            raise NoSlot(f"user {user_id} already runs {busy} browser jobs")
        return store_browser.insert_job(conn, target["id"], user_id)


def _claim_submission(tenant_id: str, job_id: str) -> bool:
    """Called right before the submitting click; committed before the click happens."""
    try:
        with db.tenant_transaction(tenant_id) as conn:
            store_browser.claim_submission(conn, job_id)
        return True
    except psycopg.errors.UniqueViolation:
        return False


def process(tenant_id: str, task_id: str, target_id: str, phase: str) -> dict:
    """Run one target; returns the small result the state machine gets back."""
    # a task running when its subscription stops (canceled, unpaid, past due beyond its grace) sends no more
    held_by_billing = None if phase == "review" else limits.subscription_allows_use(tenant_id)
    with db.tenant_transaction(tenant_id) as conn:
        task = store_tasks.get_task(conn, task_id)
        target = store_tasks.get_target(conn, task_id, target_id)
        if task is None or target is None:
            return {"target_id": target_id, "status": "skipped", "reason": "gone"}
        if task["status"] in ("paused", "cancelled"):
            return {"target_id": target_id, "status": target["status"], "reason": f"task {task['status']}"}
        if target["status"] != "submitted" and store_browser.submission_claimed(conn, target_id):
            store_tasks.record_attempt(conn, target_id, "submitted",
                                       "submitted before a worker crash; not sent again")
            return {"target_id": target_id, "status": "submitted", "reason": "already submitted"}
        # 'failed' is final too: the worker marks it only when no attempt is left, the pipeline when it gave up.
        if target["status"] in ("submitted", "captcha", "refused", "no_form", "skipped", "rejected", "review",
                                "failed"):
            return {"target_id": target_id, "status": target["status"]}
        settings = task["settings"]
        dry_run = phase == "review"
        if not dry_run:
            reason = held_by_billing or safety.defer_reason(conn, target, settings)
            # the plan's form sends: one taken with the target's claim, given back unless the form is submitted
            over_plan = limits.take(conn, tenant_id, "form_sends") if reason is None else None
            reason = reason or (over_plan.detail if over_plan is not None else None)
            if reason:
                store_tasks.defer_target(conn, target_id, f"deferred: {reason}")
                return {"target_id": target_id, "status": target["status"], "reason": reason}
        store_tasks.mark_target_running(conn, target_id)
    user_id = str(task["user_id"])
    cap = settings.get("daily_cap")
    try:
        job_id = _claim_slot(tenant_id, target, user_id, None if dry_run or cap is None else {
            "limit": int(cap), "timezone": safety.send_timezone(settings)})
    except Deferred as exc:
        with db.tenant_transaction(tenant_id) as conn:
            store_tasks.put_back_target(conn, target_id, target["status"], f"deferred: {exc}")
            _give_back_form_send(conn, dry_run)
        return {"target_id": target_id, "status": target["status"], "reason": str(exc)}
    result = None
    try:
        with tempfile.TemporaryDirectory() as shots:
            engine = _engine()
            engine.allow_hosts = tuple(get_settings().ssrf_allow_hosts)
            engine.screenshot_dir = Path(shots)
            with tracer.subsegment("playwright.submit"):
                result = engine.submit(target["target_url"], SenderProfile.from_dict(settings.get("sender") or {}),
                                       target["message"], target["subject"], dry_run=dry_run,
                                       before_submit=lambda: _claim_submission(tenant_id, job_id))
            screenshots = _store_screenshots(tenant_id, str(task["run_id"]), target_id, result.screenshots)
            fields = [f.__dict__ for f in result.fields]
            fields_file = _store_fields(tenant_id, str(task["run_id"]), target_id, fields)
    except Exception as exc:
        with db.tenant_transaction(tenant_id) as conn:
            store_browser.fail_running_job(conn, job_id, str(exc)[:2000])
            attempts = store_tasks.record_failed_attempt(conn, target_id, MAX_ATTEMPTS, str(exc)[:500])
            _give_back_form_send(conn, dry_run)  # nothing was submitted (a retry takes its own)
        if attempts["status"] == "failed":
            count("FormsFailed", tenant_id=tenant_id)
            return {"target_id": target_id, "status": "failed", "reason": str(exc)[:200]}
        raise RetryLater(f"attempt {attempts['retry_count']} of {MAX_ATTEMPTS} failed: {str(exc)[:300]}") from exc
    status = {Status.READY: "review", Status.ABORTED: "submitted"}.get(result.status, result.status)
    with db.tenant_transaction(tenant_id) as conn:
        store_browser.end_job(conn, job_id, "submitted" if status == "submitted" else "done")
        outcome = ("submitted by an earlier attempt; not sent again" if result.status == Status.ABORTED
                   else result.message[:500])
        store_tasks.record_form_result(conn, target_id, status, outcome, screenshots, fields, fields_file)
        if result.status == Status.SUBMITTED:
            store_tasks.record_sent(conn, target["domain"],
                                    str(target["contact_id"]) if target["contact_id"] else None, task_id)
        else:  # not sent by this attempt (a CAPTCHA, a refusal, no form, or sent already by an earlier one)
            _give_back_form_send(conn, dry_run)
        runs.count_item_done(conn, task["run_id"])
    if result.status == Status.SUBMITTED:  # the company was reached: the community's touch (after the commit)
        _send_submission_touch(tenant_id, task_id, target_id, target)
    if result.status in FORM_METRICS:
        count(FORM_METRICS[result.status], tenant_id=tenant_id)
    logger.info("browser job finished", extra={"target": target_id, "status": status})
    return {"target_id": target_id, "status": status}


def _give_back_form_send(conn: db.Connection, dry_run: bool) -> None:
    """The form send ``process`` took for a real run goes back to the month's allowance (a review's dry run took
    none)."""
    if not dry_run:
        limits.give_back(conn, "form_sends")


def _send_submission_touch(tenant_id: str, task_id: str, target_id: str, target: dict[str, Any]) -> None:
    """The submission as a touch for the community area (an activity of the organization at the company's domain):
    queued, never failing the job (funnel.community.touches.send). One per target: a target is submitted once."""
    from datetime import UTC, datetime

    from funnel.community import touches

    try:
        touch = touches.FormSubmission(
            tenant_id=tenant_id, touch_id=f"target:{target_id}", occurred_at=datetime.now(UTC),
            domain=target["domain"], company_name=(target.get("company_name") or None) and target["company_name"][:300],
            contact_id=target.get("contact_id"), task_id=task_id, target_id=target_id,
            target_url=(target.get("target_url") or "")[:4000] or None, urls=touches.links_in(target.get("message")))
    except ValueError:  # not a touch the contract can carry: the submission stays recorded
        logger.warning("form submission not sent as a touch", extra={"target": target_id}, exc_info=True)
        return
    touches.send(touch)


def _store_screenshots(tenant_id: str, run_id: str, target_id: str, paths: list[str]) -> list[str]:
    keys = []
    with db.tenant_transaction(tenant_id) as conn:
        for index, path in enumerate(paths):
            artifact = runs.write_file(conn, tenant_id, run_id, "browser", f"{index}-{Path(path).name}",
                                       Path(path).read_bytes(), "image/png", item_key=target_id)
            keys.append(artifact["file_path"])
    return keys


def _store_fields(tenant_id: str, run_id: str, target_id: str, fields: list[dict[str, Any]]) -> str | None:
    """The filled fields as a run artifact (``fields.json``) beside the screenshots, which the API hands out as
    a signed link; its object key (None when the form had no fields)."""
    if not fields:
        return None
    with db.tenant_transaction(tenant_id) as conn:
        artifact = runs.write_file(conn, tenant_id, run_id, "browser", FIELDS_FILE,
                                   json.dumps(fields, ensure_ascii=False).encode(), "application/json",
                                   item_key=target_id)
    return str(artifact["file_path"])
