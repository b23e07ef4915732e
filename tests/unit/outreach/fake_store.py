"""An in-memory fake of the outreach store modules (store_contacts, store_tasks, store_browser), so the rules in
contacts, tasks, safety, worker and pipeline run without a database; the ``outreach_store`` fixture
(conftest.py) installs one."""
from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from funnel.platform import suppression

TENANT = "7d1f3f2e-0000-4000-8000-000000000000"
USER = "0b6f1c1e-1111-4111-8111-111111111111"
BUSY = ("running", "submitting")


class FakeOutreachStore:
    """The functions of the outreach store modules the services call, over plain dicts and lists."""

    def __init__(self) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.import_jobs: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.users: dict[str, int] = {USER: 2}     # user id -> max_concurrency
        self.sent: list[dict[str, Any]] = []        # sent_history rows; ``today`` says whether today's
        self.contacted_domains: set[str] = set()   # domains in sent_history within any re-contact interval
        self.locks: list[str] = []
        self.ai_runs: list[dict[str, Any]] = []
        self.progress: list[tuple[int, int]] = []  # (processed_rows, imported) as each chunk commits
        self.steps_done = 0
        self.suppressed: dict[str, set[str]] = {}  # the do-not-contact list: kind -> normalised values
        self.audit: list[str] = []                  # audit actions recorded
        self._clock = itertools.count()

    def _created(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC).replace(microsecond=next(self._clock))

    # ---------------------------------------------------------------- store_contacts
    def insert_contact(self, conn, user_id, values, metadata):
        if any(c["domain"] == values["domain"] and values["domain"] for c in self.contacts.values()):
            raise psycopg.errors.UniqueViolation("contacts_domain")
        row = {"id": str(uuid.uuid4()), "user_id": user_id, **values, "metadata": metadata,
               "created_at": self._created(), "updated_at": self._created()}
        self.contacts[row["id"]] = row
        return dict(row)

    def update_contact(self, conn, contact_id, values, metadata):
        if any(c["domain"] == values["domain"] and cid != contact_id for cid, c in self.contacts.items()):
            raise psycopg.errors.UniqueViolation("contacts_domain")
        if contact_id not in self.contacts:
            return None
        self.contacts[contact_id].update(values, metadata=metadata)
        return dict(self.contacts[contact_id])

    def get_contact(self, conn, contact_id):
        row = self.contacts.get(contact_id)
        return dict(row) if row else None

    def delete_contact(self, conn, contact_id):
        return self.contacts.pop(contact_id, None) is not None

    def insert_contact_unless_known(self, conn, user_id, values):
        try:
            self.insert_contact(conn, user_id, values, {})
        except psycopg.errors.UniqueViolation:
            return False
        return True

    def contacts_by_ids(self, conn, contact_ids):
        return [dict(self.contacts[i]) for i in dict.fromkeys(contact_ids) if i in self.contacts]

    def suppression_keys(self, conn, contact_id):
        row = self.contacts.get(contact_id)
        return {key: row[key] for key in ("email", "phone", "corporate_number")} if row else None

    def insert_import_job(self, conn, user_id, status, total_rows):
        job = {"id": str(uuid.uuid4()), "user_id": user_id, "status": status, "total_rows": total_rows,
               "processed_rows": 0, "imported": 0, "rejected": 0, "report": [], "source_path": None}
        self.import_jobs[job["id"]] = job
        return {"id": job["id"]}

    def set_import_source(self, conn, job_id, source_path):
        self.import_jobs[job_id]["source_path"] = source_path

    def lock_import_job(self, conn, job_id):
        job = self.import_jobs.get(job_id)
        return dict(job) if job else None

    def mark_import_running(self, conn, job_id):
        self.import_jobs[job_id]["status"] = "running"

    def record_import_progress(self, conn, job_id, processed_rows, imported):
        self.import_jobs[job_id].update(processed_rows=processed_rows, imported=imported)
        self.progress.append((processed_rows, imported))

    def get_import_job(self, conn, job_id):
        job = self.import_jobs.get(job_id)
        return {k: v for k, v in job.items() if k not in ("user_id", "source_path")} if job else None

    def complete_import_job(self, conn, job_id, imported, rejected, report):
        job = self.import_jobs[job_id]
        job.update(status="completed", processed_rows=job["total_rows"], imported=imported, rejected=rejected,
                   report=report)

    def fail_import_job(self, conn, job_id, error, report):
        self.import_jobs[job_id].update(status="failed", error=error, report=report,
                                        rejected=sum(1 for r in report if r["status"] == "rejected"))

    def fail_import_jobs_older_than(self, conn, seconds, error):
        """A job's ``age`` (seconds since it was created, 0 unless a test sets it) stands in for ``created_at``."""
        stuck = [job for job in self.import_jobs.values()
                 if job["status"] in ("pending", "running") and job.get("age", 0) > seconds]
        for job in stuck:
            job.update(status="failed", error=error)
        return [{"id": job["id"], "user_id": job["user_id"], "error": error} for job in stuck]

    # ---------------------------------------------------------------- store_tasks: tasks
    def add_task(self, **fields):
        task = {"id": str(uuid.uuid4()), "user_id": USER, "name": "t", "mode": "auto", "status": "draft",
                "settings": {"sender": {"company": "Us"}}, "run_id": "run-1", "started_at": None,
                "finished_at": None, "created_at": self._created(), **fields}
        self.tasks[task["id"]] = task
        return task

    def insert_task(self, conn, user_id, name, mode, settings):
        return dict(self.add_task(user_id=user_id, name=name, mode=mode, settings=settings))

    def get_task(self, conn, task_id, for_update=False):
        row = self.tasks.get(task_id)
        return dict(row) if row else None

    def mark_task_running(self, conn, task_id, run_id):
        task = self.tasks[task_id]
        task.update(status="running", run_id=run_id, started_at=task["started_at"] or "now", finished_at=None)

    def restore_task(self, conn, task_id, status, started_at):
        self.tasks[task_id].update(status=status, started_at=started_at)

    def set_task_status(self, conn, task_id, status):
        self.tasks[task_id]["status"] = status

    def end_task(self, conn, task_id, status):
        if task_id not in self.tasks:
            return None
        self.tasks[task_id].update(status=status, finished_at="now")
        return {"name": self.tasks[task_id]["name"], "user_id": self.tasks[task_id]["user_id"]}

    def finish_run_of_task(self, conn, task_id, status):
        self.tasks[task_id].update(status=status, finished_at="now" if status == "completed" else None)

    # ---------------------------------------------------------------- store_tasks: targets
    def add_target(self, task, **fields):
        target = {"id": str(uuid.uuid4()), "task_id": task["id"], "contact_id": None,
                  "target_url": "https://a.example.com/", "domain": "a.example.com", "company_name": "A",
                  "subject": None, "message": "hello", "status": "pending", "retry_count": 0,
                  "result_summary": None, "screenshots": [], "fields": None, "fields_file": None,
                  "last_attempt_at": None,
                  "created_at": self._created(), **fields}
        self.targets[target["id"]] = target
        return target

    def _of(self, task_id, *statuses):
        return [t for t in self.targets.values()
                if t["task_id"] == task_id and (not statuses or t["status"] in statuses)]

    def insert_target(self, conn, task_id, **fields):
        self.add_target(self.tasks[task_id], **fields)

    def target_counts(self, conn, task_id):
        counts: dict[str, int] = {}
        for target in self._of(task_id):
            counts[target["status"]] = counts.get(target["status"], 0) + 1
        return counts

    def list_targets(self, conn, task_id, status):
        """The task's targets (of ``status`` when given): what the tests look at (the store pages them)."""
        return [dict(t) for t in (self._of(task_id, status) if status else self._of(task_id))]

    def target_counts_of_tasks(self, conn, task_ids):
        return {str(task_id): counts for task_id in task_ids if (counts := self.target_counts(conn, task_id))}

    def target_ids(self, conn, task_id, status):
        return [t["id"] for t in self._of(task_id, status)]

    def edit_target_in_review(self, conn, task_id, target_id, changes):
        target = self.targets.get(target_id)
        if not target or target["task_id"] != task_id or target["status"] != "review":
            return None
        target.update({k: v for k, v in changes.items() if k in ("subject", "message")})
        return dict(target)

    def has_targets(self, conn, task_id, status):
        return bool(self._of(task_id, status))

    def count_targets(self, conn, task_id, status):
        return len(self._of(task_id, status))

    def targets_to_prepare(self, conn, task_id, status):
        return [{k: t[k] for k in ("id", "target_url", "company_name", "message")} for t in self._of(task_id, status)]

    def get_target(self, conn, task_id, target_id):
        row = self.targets.get(target_id)
        return dict(row) if row and row["task_id"] == task_id else None

    def move_targets(self, conn, task_id, from_statuses, to_status):
        for target in self._of(task_id, *from_statuses):
            target["status"] = to_status

    def skip_unsent_targets(self, conn, task_id, reason):
        for target in self._of(task_id, "pending", "queued", "approved", "review"):
            target.update(status="skipped", result_summary=reason)

    def review_target(self, conn, task_id, target_id, status):
        target = self.targets.get(target_id)
        if not target or target["task_id"] != task_id or target["status"] != "review":
            return None
        target["status"] = status
        return dict(target)

    def set_target_message(self, conn, target_id, message):
        self.targets[target_id]["message"] = message

    def record_attempt(self, conn, target_id, status, result_summary):
        self.targets[target_id].update(status=status, result_summary=result_summary, last_attempt_at="now")

    def defer_target(self, conn, target_id, result_summary):
        self.targets[target_id].update(result_summary=result_summary, last_attempt_at="now")

    def mark_target_running(self, conn, target_id):
        self.targets[target_id].update(status="running", last_attempt_at="now")

    def put_back_target(self, conn, target_id, status, result_summary):
        self.targets[target_id].update(status=status, result_summary=result_summary)

    def record_failed_attempt(self, conn, target_id, max_attempts, result_summary):
        target = self.targets[target_id]
        target["retry_count"] += 1
        target.update(status="failed" if target["retry_count"] >= max_attempts else "pending",
                      result_summary=result_summary)
        return {"retry_count": target["retry_count"], "status": target["status"]}

    def fail_unfinished_target(self, conn, target_id, result_summary):
        target = self.targets[target_id]
        if target["status"] in ("queued", "running", "pending", "approved"):
            target.update(status="failed", result_summary=result_summary, last_attempt_at="now")

    def record_form_result(self, conn, target_id, status, result_summary, screenshots, fields, fields_file):
        self.targets[target_id].update(status=status, result_summary=result_summary, screenshots=screenshots,
                                       fields=fields, fields_file=fields_file, last_attempt_at="now")

    # ---------------------------------------------------------------- store_tasks: sent history
    def contacted_within(self, conn, domain, days):
        return days > 0 and domain in self.contacted_domains

    def record_sent(self, conn, domain, contact_id, task_id, channel="form"):
        self.sent.append({"domain": domain, "contact_id": contact_id, "task_id": task_id, "today": True})

    def submitted_today(self, conn, timezone):
        self.timezone_asked = timezone
        return sum(1 for row in self.sent if row["today"])

    # ---------------------------------------------------------------- store_tasks: AI personalisation
    def tenant_ai_settings(self, conn):  # funnel.platform.llm's
        return {"step_models": {}}

    def personalised_targets(self, conn, step, target_ids):
        return {run["target_id"] for run in self.ai_runs if run["step"] == step and run["target_id"] in target_ids}

    def insert_ai_run(self, conn, target_id, step, **run):
        self.ai_runs.append({"target_id": target_id, "step": step, **run})

    def ai_runs_of_targets(self, conn, target_ids):
        wanted = {str(target_id) for target_id in target_ids}
        return [{"id": f"ai-run-{index}", "task_target_id": run["target_id"], "step": run["step"],
                 "model": run.get("model"), "prompt_tokens": run.get("prompt_tokens", 0),
                 "completion_tokens": run.get("completion_tokens", 0), "cost_estimate": run.get("cost_estimate", 0),
                 "created_at": self._created()}
                for index, run in enumerate(self.ai_runs) if str(run["target_id"]) in wanted]

    def llm_usage_of_task(self, conn, task_id):
        runs = self.ai_runs_of_targets(conn, [t["id"] for t in self._of(task_id)])
        return {"runs": len(runs), "prompt_tokens": sum(r["prompt_tokens"] for r in runs),
                "completion_tokens": sum(r["completion_tokens"] for r in runs),
                "cost_estimate": sum(r["cost_estimate"] for r in runs)}

    # ---------------------------------------------------------------- store_browser
    def lock_user_slots(self, conn, user_id):
        self.locks.append(f"browser-slots:{user_id}")

    def lock_daily_cap(self, conn, tenant_id):
        self.locks.append(f"daily-cap:{tenant_id}")

    def add_job(self, user_id=USER, state="running", heartbeat_age=0, target_id="other"):
        job_id = str(uuid.uuid4())
        self.jobs[job_id] = {"id": job_id, "user_id": user_id, "task_target_id": target_id, "state": state,
                             "heartbeat_age": heartbeat_age, "error": None}
        return job_id

    def jobs_in_flight(self, conn, heartbeat_within_seconds):
        return sum(1 for j in self.jobs.values()
                   if j["state"] in BUSY and j["heartbeat_age"] < heartbeat_within_seconds)

    def time_out_silent_jobs(self, conn, user_id, silent_for_seconds):
        for job in self.jobs.values():
            if job["user_id"] == user_id and job["state"] == "running" and job["heartbeat_age"] > silent_for_seconds:
                job.update(state="timed_out", error="no heartbeat")

    def max_concurrency(self, conn, user_id):
        return self.users.get(user_id)

    def busy_jobs(self, conn, user_id):
        return sum(1 for j in self.jobs.values() if j["user_id"] == user_id and j["state"] in BUSY)

    def insert_job(self, conn, target_id, user_id):
        return self.add_job(user_id=user_id, target_id=target_id)

    def claim_submission(self, conn, job_id):
        target_id = self.jobs[job_id]["task_target_id"]
        if any(j["task_target_id"] == target_id and j["state"] == "submitting" and j["id"] != job_id
               for j in self.jobs.values()):
            raise psycopg.errors.UniqueViolation("browser_jobs_one_submission")
        self.jobs[job_id]["state"] = "submitting"

    def submission_claimed(self, conn, target_id):
        return any(j["task_target_id"] == target_id and j["state"] in ("submitting", "submitted")
                   for j in self.jobs.values())

    def fail_running_job(self, conn, job_id, error):
        if self.jobs[job_id]["state"] == "running":
            self.jobs[job_id].update(state="failed", error=error)

    def end_job(self, conn, job_id, state):
        self.jobs[job_id]["state"] = state

    def count_item_done(self, conn, run_id):  # funnel.platform.runs'
        self.steps_done += 1

    # ---------------------------------------------------------------- the do-not-contact list
    def is_suppressed(self, conn, **keys):
        """Like ``funnel.platform.suppression.is_suppressed`` over ``self.suppressed`` (kind -> normalised values)."""
        self.suppression_asked = {k: v for k, v in keys.items() if v}
        for kind, value in self.suppression_asked.items():
            if suppression.normalized(kind, value) in self.suppressed.get(kind, set()):
                return f"{kind} on the do-not-contact list (do_not_contact)"
        return None

