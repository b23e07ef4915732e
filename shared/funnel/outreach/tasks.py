"""Send tasks: targets from contacts or URLs, started as a run of the send pipeline,
paused, resumed, cancelled; review mode gates submission on a person's approval."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from funnel import db
from funnel.billing import limits
from funnel.db import Connection, Row
from funnel.outreach import safety, store_contacts
from funnel.outreach import store_tasks as store
from funnel.outreach.templates import check_variables, get_template, render
from funnel.platform import audit, aws, runs, storage, tenants
from funnel.platform.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from funnel.platform.normalize import domain_of, normalize_url
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.platform.ssrf import UnsafeUrlError, check_url
from funnel.settings import get_settings

DOWNLOAD_LINK_SECONDS = 900  # a target's screenshot and fields links: long enough to look, short enough to leak little
FINAL_TARGET_STATUSES = ("submitted", "captcha", "refused", "no_form", "failed", "skipped", "rejected")
SENDER_FIELDS = ("company", "department", "position", "last_name", "first_name", "last_name_kana", "first_name_kana",
                 "email", "phone", "zip", "prefecture", "address", "url")


def _stepfunctions() -> Any:  # boto3's clients are untyped
    return aws.client("stepfunctions")


def create_task(principal: Principal, *, name: str, mode: str, sender: dict, message: str | None,
                subject: str | None, template_id: str | None, contact_ids: list[str], urls: list[str],
                settings: dict) -> Row:
    if not contact_ids and not urls:
        raise ValidationFailed("a task needs at least one target (contact_ids or urls)")
    missing = [f for f in ("company", "last_name", "first_name", "email") if not sender.get(f)]
    if missing:
        raise ValidationFailed(f"the sender profile needs {missing}")
    with db.tenant_transaction(principal.tenant_id) as conn:
        ai_mode = False
        if template_id:
            template = get_template(conn, template_id)
            message, subject = template["body"], subject or template["metadata"].get("subject")
            ai_mode = bool(template["metadata"].get("ai_mode"))
        if not message:
            raise ValidationFailed("a task needs a message or a template_id")
        check_variables(message, subject or "")
        targets = _targets(conn, contact_ids, urls)
        task = store.insert_task(conn, principal.user_id, name, mode, {
            **settings, "sender": sender, "message": message, "subject": subject, "ai_mode": ai_mode,
            "template_id": template_id})
        recontact_days = int(settings.get("recontact_days", safety.DEFAULT_RECONTACT_DAYS))
        for target in targets:
            reason = safety.skip_reason(conn, target, recontact_days)
            values = {"company_name": target.get("company_name") or target["domain"],
                      "contact_person": target.get("contact_person") or "", "industry": target.get("industry") or "",
                      "url": target["url"], "sender_company": sender.get("company"),
                      "sender_name": f"{sender.get('last_name', '')} {sender.get('first_name', '')}".strip(),
                      "sender_email": sender.get("email"), "sender_phone": sender.get("phone")}
            store.insert_target(conn, task["id"], contact_id=target.get("contact_id"), target_url=target["url"],
                                domain=target["domain"], company_name=values["company_name"],
                                subject=render(subject, values) if subject else None,
                                message=render(message, values), status="skipped" if reason else "pending",
                                result_summary=reason)
        audit.record(conn, principal, "task.create", "task", task["id"], {"targets": len(targets), "mode": mode})
    return task


def _targets(conn: Connection, contact_ids: list[str], urls: list[str]) -> list[dict]:
    """One target per company domain (the first wins); every URL must pass the SSRF guard."""
    found: dict[str, dict] = {}
    if contact_ids:
        rows = store_contacts.contacts_by_ids(conn, contact_ids)
        if len(rows) != len(set(contact_ids)):
            raise ValidationFailed.at(["body", "contact_ids"], "not contacts of this workspace")
        for row in rows:
            if not row["default_url"]:
                raise ValidationFailed(f"contact {row['company_name']} has no URL")
            found.setdefault(row["domain"], {"contact_id": row["id"], "url": row["default_url"],
                                             "domain": row["domain"], "company_name": row["company_name"],
                                             "email": row["email"], "contact_person": row["default_contact_person"],
                                             "phone": row["phone"], "corporate_number": row["corporate_number"],
                                             "industry": row["industry"]})
    for index, raw in enumerate(urls):
        url = normalize_url(raw, loc=["body", "urls", index])
        found.setdefault(domain_of(url), {"url": url, "domain": domain_of(url)})
    allow = get_settings().ssrf_allow_hosts
    for target in found.values():
        try:
            check_url(target["url"], allow)
        except UnsafeUrlError as exc:
            raise ValidationFailed(f"{target['url']}: {exc}") from exc
    return list(found.values())


def get_task(conn: Connection, task_id: str, for_update: bool = False) -> Row:
    row = store.get_task(conn, task_id, for_update)
    if row is None:
        raise NotFound("task not found")
    return row


def summary(conn: Connection, task_id: str) -> dict[str, int]:
    """``total`` and the count of each status a target of the task has."""
    counts = store.target_counts(conn, task_id)
    return {"total": sum(counts.values()), **counts}


def list_tasks(conn: Connection, cursor: str | None, limit: int) -> Page:
    """A page of tasks, each with its ``summary`` (targets by status, counted for the whole page at once)."""
    page = store.tasks_page(conn, cursor, limit)
    counts = store.target_counts_of_tasks(conn, [task["id"] for task in page.items])
    items = []
    for task in page.items:
        of_task = counts.get(str(task["id"]), {})
        items.append({**task, "summary": {"total": sum(of_task.values()), **of_task}})
    return Page(items=items, next_cursor=page.next_cursor)


def llm_usage(conn: Connection, task_id: str) -> dict[str, Any]:
    """The model calls of the task's AI personalisation and their tokens and estimated cost (USD)."""
    usage = store.llm_usage_of_task(conn, task_id)
    return {**usage, "cost_estimate": float(usage["cost_estimate"])}


def list_targets(conn: Connection, task_id: str, status: str | None, cursor: str | None, limit: int) -> Page:
    """A page of the task's targets (in the order they were added), as the API shows them (``_shown``)."""
    get_task(conn, task_id)
    page = store.targets_page(conn, task_id, status, cursor, limit)
    return Page(items=_shown(conn, page.items), next_cursor=page.next_cursor)


def _shown(conn: Connection, targets: list[Row]) -> list[dict[str, Any]]:
    """Targets with their files as signed, expiring links (screenshots, ``fields_file``) and their AI runs."""
    runs_by_target: dict[str, list[dict[str, Any]]] = {}
    for run in store.ai_runs_of_targets(conn, [target["id"] for target in targets]):
        runs_by_target.setdefault(str(run["task_target_id"]), []).append(
            {**{k: v for k, v in run.items() if k != "task_target_id"}, "cost_estimate": float(run["cost_estimate"])})
    expires_at = datetime.now(UTC) + timedelta(seconds=DOWNLOAD_LINK_SECONDS)
    shown = []
    for target in targets:
        shown.append({**target, "screenshots": [_link(key, expires_at) for key in target["screenshots"] or []],
                      "fields_file": _link(target["fields_file"], expires_at) if target["fields_file"] else None,
                      "ai_runs": runs_by_target.get(str(target["id"]), [])})
    return shown


def _link(key: str, expires_at: datetime) -> dict[str, Any]:
    return {"name": key.rsplit("/", 1)[-1], "url": storage.presigned_url(key, DOWNLOAD_LINK_SECONDS),
            "expires_at": expires_at}


def edit_target(principal: Principal, task_id: str, target_id: str, changes: dict[str, str | None]) -> dict[str, Any]:
    """A reviewer's own subject and/or message for a target waiting for review (what the submit phase sends);
    409 once it is approved, rejected or sent."""
    if not changes:
        raise ValidationFailed("change the subject or the message")
    with db.tenant_transaction(principal.tenant_id) as conn:
        get_task(conn, task_id)
        row = store.edit_target_in_review(conn, task_id, target_id, changes)
        if row is None:
            if store.get_target(conn, task_id, target_id) is None:
                raise NotFound("target not found")
            raise Conflict("only a target waiting for review can be edited")
        audit.record(conn, principal, "task_target.edit", "task_target", target_id, {"changed": sorted(changes)})
        return _shown(conn, [row])[0]


def start(principal: Principal, task_id: str, phase: str | None = None) -> Row:
    """Start (or resume) the send pipeline over the task's pending (or, after review, approved) targets."""
    tenants.require_email_verified(principal.tenant_id)
    limits.check_subscription(principal.tenant_id)  # 402 while canceled, unpaid or past due beyond the grace period
    limits.check_plan_allows(principal.tenant_id, "form_sends")  # each target takes its own when it is sent
    with db.tenant_transaction(principal.tenant_id) as conn:
        task = get_task(conn, task_id, for_update=True)
        if task["status"] in ("running", "completed", "cancelled"):
            raise Conflict(f"a {task['status']} task cannot be started")
        if phase is None and task["mode"] == "review":
            # A review task paused (or deferred) after its review goes on sending its approved targets.
            pending = store.has_targets(conn, task_id, "pending")
            phase = "submit" if task["status"] == "review" or not pending else "review"
        phase = phase or "auto"
        wanted = "approved" if phase == "submit" else "pending"
        if not store.has_targets(conn, task_id, wanted):
            raise Conflict(f"no {wanted} targets to send")
        total = store.count_targets(conn, task_id, wanted)
        run = runs.create_run(conn, "send_pipeline", {"task_id": task_id, "phase": phase}, principal.user_id, total)
        store.mark_task_running(conn, task_id, run["id"])
        audit.record(conn, principal, "task.start", "task", task_id, {"phase": phase, "run_id": str(run["id"])})
    try:
        execution = _stepfunctions().start_execution(
            stateMachineArn=get_settings().send_pipeline_arn, name=f"task-{str(task_id)[:8]}-{str(run['id'])}",
            input=json.dumps({"tenant_id": principal.tenant_id, "task_id": str(task_id), "run_id": str(run["id"]),
                              "phase": phase}))
    except Exception as exc:  # nothing half-started: the task is as it was, the run says why
        with db.tenant_transaction(principal.tenant_id) as conn:
            store.restore_task(conn, task_id, task["status"], task["started_at"])
            runs.update_run(conn, str(run["id"]), status="failed",
                            error_message=f"could not start the send pipeline: {exc}")
        raise ServiceUnavailable("the send pipeline cannot be started; nothing was sent, try again") from exc
    with db.tenant_transaction(principal.tenant_id) as conn:
        runs.update_run(conn, str(run["id"]), status="running", execution_arn=execution["executionArn"])
        return get_task(conn, task_id)


def resume(principal: Principal, task_id: str) -> Row:
    """Start a paused task again (its pending, or after review its approved, targets)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        status = get_task(conn, task_id)["status"]
    if status != "paused":
        raise Conflict(f"a {status} task cannot be resumed")
    return start(principal, task_id)


def pause(principal: Principal, task_id: str) -> Row:
    with db.tenant_transaction(principal.tenant_id) as conn:
        task = get_task(conn, task_id, for_update=True)
        if task["status"] != "running":
            raise Conflict(f"a {task['status']} task cannot be paused")
        store.set_task_status(conn, task_id, "paused")
        audit.record(conn, principal, "task.pause", "task", task_id)
        return get_task(conn, task_id)


def cancel(principal: Principal, task_id: str) -> Row:
    with db.tenant_transaction(principal.tenant_id) as conn:
        task = get_task(conn, task_id, for_update=True)
        if task["status"] in ("completed", "cancelled"):
            raise Conflict(f"a {task['status']} task cannot be cancelled")
        store.end_task(conn, task_id, "cancelled")
        store.skip_unsent_targets(conn, task_id, "task cancelled")
        audit.record(conn, principal, "task.cancel", "task", task_id)
        return get_task(conn, task_id)


def review_target(principal: Principal, task_id: str, target_id: str, approve: bool) -> dict[str, Any]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        task = get_task(conn, task_id)
        row = store.review_target(conn, task["id"], target_id, "approved" if approve else "rejected")
        if row is None:
            raise Conflict("only a target waiting for review can be approved or rejected")
        audit.record(conn, principal, "task_target.approve" if approve else "task_target.reject", "task_target",
                     target_id)
        return _shown(conn, [row])[0]
