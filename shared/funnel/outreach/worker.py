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

import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from funnel import db
from funnel.observability import count, logger, tracer
from funnel.outreach import safety
from funnel.outreach.forms.model import SenderProfile, Status
from funnel.platform import runs, suppression
from funnel.settings import get_settings

STUCK_AFTER_SECONDS = 600
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


def _engine():
    """One warm browser per worker thread (Playwright's sync API is bound to its thread)."""
    from funnel.outreach.forms.engine import FormEngine  # Playwright: only where a browser really runs

    engine = getattr(_local, "engine", None)
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


def _claim_slot(tenant_id: str, target: dict, user_id: str, cap: dict | None = None) -> str:
    """A free slot of the user's ``max_concurrency``, waiting up to ``SLOT_WAIT_SECONDS`` for one."""
    deadline = time.monotonic() + SLOT_WAIT_SECONDS
    while True:
        try:
            return _try_claim_slot(tenant_id, target, user_id, cap)
        except NoSlot:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)


def _try_claim_slot(tenant_id: str, target: dict, user_id: str, cap: dict | None = None) -> str:
    """``cap`` ({"limit", "timezone"}) is checked under a tenant-wide lock counting today's submissions plus
    the jobs in flight, so two concurrent workers cannot both take the last submission of the day."""
    with db.tenant_transaction(tenant_id) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"browser-slots:{user_id}",))
        if cap:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"daily-cap:{tenant_id}",))
            in_flight = conn.execute("SELECT count(*) AS n FROM browser_jobs WHERE state IN ('running', 'submitting') "
                                     "AND heartbeat_at > now() - make_interval(secs => %s)",
                                     (STUCK_AFTER_SECONDS,)).fetchone()["n"]
            if safety.submitted_today(conn, cap["timezone"]) + in_flight >= cap["limit"]:
                raise Deferred(f"the daily cap of {cap['limit']} submissions is reached")
        conn.execute("UPDATE browser_jobs SET state = 'timed_out', ended_at = now(), error = 'no heartbeat' "
                     "WHERE user_id = %s AND state = 'running' AND heartbeat_at < now() - make_interval(secs => %s)",
                     (user_id, STUCK_AFTER_SECONDS))
        limit = conn.execute("SELECT max_concurrency FROM users WHERE id = %s", (user_id,)).fetchone()
        busy = conn.execute("SELECT count(*) AS n FROM browser_jobs WHERE user_id = %s AND state IN "
                            "('running', 'submitting')", (user_id,)).fetchone()["n"]
        if busy >= (limit["max_concurrency"] if limit else 1):
            raise NoSlot(f"user {user_id} already runs {busy} browser jobs")
        return str(conn.execute("INSERT INTO browser_jobs (task_target_id, user_id) VALUES (%s, %s) RETURNING id",
                                (target["id"], user_id)).fetchone()["id"])


def _claim_submission(tenant_id: str, job_id: str) -> bool:
    """Called right before the submitting click; committed before the click happens."""
    try:
        with db.tenant_transaction(tenant_id) as conn:
            conn.execute("UPDATE browser_jobs SET state = 'submitting', heartbeat_at = now() WHERE id = %s", (job_id,))
        return True
    except psycopg.errors.UniqueViolation:
        return False


def process(tenant_id: str, task_id: str, target_id: str, phase: str) -> dict:
    """Run one target; returns the small result the state machine gets back."""
    with db.tenant_transaction(tenant_id) as conn:
        task = conn.execute("SELECT id, user_id, status, settings, run_id FROM tasks WHERE id = %s",
                            (task_id,)).fetchone()
        target = conn.execute("SELECT * FROM task_targets WHERE id = %s AND task_id = %s", (target_id, task_id)
                              ).fetchone()
        if task is None or target is None:
            return {"target_id": target_id, "status": "skipped", "reason": "gone"}
        if task["status"] in ("paused", "cancelled"):
            return {"target_id": target_id, "status": target["status"], "reason": f"task {task['status']}"}
        already = conn.execute("SELECT 1 FROM browser_jobs WHERE task_target_id = %s AND state IN "
                               "('submitting', 'submitted')", (target_id,)).fetchone()
        if already and target["status"] not in ("submitted",):
            conn.execute("UPDATE task_targets SET status = 'submitted', result_summary = 'submitted before a worker "
                         "crash; not sent again', last_attempt_at = now() WHERE id = %s", (target_id,))
            return {"target_id": target_id, "status": "submitted", "reason": "already submitted"}
        # 'failed' is final too: the worker marks it only when no attempt is left, the pipeline when it gave up.
        if target["status"] in ("submitted", "captcha", "refused", "no_form", "skipped", "rejected", "review",
                                "failed"):
            return {"target_id": target_id, "status": target["status"]}
        settings = task["settings"]
        dry_run = phase == "review"
        if not dry_run:
            contact = conn.execute("SELECT email, phone, corporate_number FROM contacts WHERE id = %s",
                                   (target["contact_id"],)).fetchone() if target["contact_id"] else None
            reason = suppression.is_suppressed(conn, domain=target["domain"], company_name=target["company_name"],
                                               **(contact or {}))
            reason = reason or safety.outside_send_window(settings.get("send_window"))
            cap = settings.get("daily_cap")
            zone = (settings.get("send_window") or {}).get("timezone", "Asia/Tokyo")
            if reason is None and cap is not None and safety.submitted_today(conn, zone) >= int(cap):
                reason = f"the daily cap of {cap} submissions is reached"
            if reason:
                conn.execute("UPDATE task_targets SET result_summary = %s, last_attempt_at = now() WHERE id = %s",
                             (f"deferred: {reason}", target_id))
                return {"target_id": target_id, "status": target["status"], "reason": reason}
        conn.execute("UPDATE task_targets SET status = 'running', last_attempt_at = now() WHERE id = %s", (target_id,))
    user_id = str(task["user_id"])
    cap = settings.get("daily_cap")
    try:
        job_id = _claim_slot(tenant_id, target, user_id, None if dry_run or cap is None else {
            "limit": int(cap), "timezone": (settings.get("send_window") or {}).get("timezone", "Asia/Tokyo")})
    except Deferred as exc:
        with db.tenant_transaction(tenant_id) as conn:
            conn.execute("UPDATE task_targets SET status = %s, result_summary = %s WHERE id = %s",
                         (target["status"], f"deferred: {exc}", target_id))
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
    except Exception as exc:
        with db.tenant_transaction(tenant_id) as conn:
            conn.execute("UPDATE browser_jobs SET state = 'failed', error = %s, ended_at = now() WHERE id = %s AND "
                         "state = 'running'", (str(exc)[:2000], job_id))
            attempts = conn.execute("UPDATE task_targets SET retry_count = retry_count + 1, status = CASE WHEN "
                                    "retry_count + 1 >= %s THEN 'failed' ELSE 'pending' END, result_summary = %s "
                                    "WHERE id = %s RETURNING retry_count, status", (MAX_ATTEMPTS, str(exc)[:500],
                                                                                    target_id)).fetchone()
        if attempts["status"] == "failed":
            count("FormsFailed", tenant_id=tenant_id)
            return {"target_id": target_id, "status": "failed", "reason": str(exc)[:200]}
        raise RetryLater(f"attempt {attempts['retry_count']} of {MAX_ATTEMPTS} failed: {str(exc)[:300]}") from exc
    status = {Status.READY: "review", Status.ABORTED: "submitted"}.get(result.status, result.status)
    with db.tenant_transaction(tenant_id) as conn:
        conn.execute("UPDATE browser_jobs SET state = %s, ended_at = now() WHERE id = %s",
                     ("submitted" if status == "submitted" else "done", job_id))
        conn.execute("UPDATE task_targets SET status = %s, result_summary = %s, screenshots = %s, fields = %s, "
                     "last_attempt_at = now() WHERE id = %s",
                     (status, result.message[:500] if result.status != Status.ABORTED else
                      "submitted by an earlier attempt; not sent again", Jsonb(screenshots),
                      Jsonb([f.__dict__ for f in result.fields]), target_id))
        if result.status == Status.SUBMITTED:
            safety.record_sent(conn, target["domain"], str(target["contact_id"]) if target["contact_id"] else None,
                               task_id)
        conn.execute("UPDATE runs SET steps_done = steps_done + 1, updated_at = now() WHERE id = %s", (task["run_id"],))
    if result.status in FORM_METRICS:
        count(FORM_METRICS[result.status], tenant_id=tenant_id)
    logger.info("browser job finished", extra={"target": target_id, "status": status})
    return {"target_id": target_id, "status": status}


def _store_screenshots(tenant_id: str, run_id: str, target_id: str, paths: list[str]) -> list[str]:
    keys = []
    with db.tenant_transaction(tenant_id) as conn:
        for index, path in enumerate(paths):
            artifact = runs.write_file(conn, tenant_id, run_id, "browser", f"{index}-{Path(path).name}",
                                       Path(path).read_bytes(), "image/png", item_key=target_id)
            keys.append(artifact["file_path"])
    return keys
