"""Lambda tasks of the send pipeline (statemachines/outreach_send_pipeline.asl.json)."""
from __future__ import annotations

import json
import re
import time
from typing import Any

from funnel import db
from funnel.db import Connection
from funnel.notifications.service import dispatch_pending, notify
from funnel.observability import logger
from funnel.outreach import store_tasks as store
from funnel.outreach.tasks import get_task, summary
from funnel.platform import llm, runs
from funnel.platform.ssrf import UnsafeUrlError, fetch
from funnel.settings import get_settings

PERSONALIZE_STEP = "personalize_message"
TARGETS_FILE = "targets.json"  # the ids the Map iterates over, one JSON array
PREPARE_BUDGET_SECONDS = 200.0  # OutreachSendStepsFunction's Timeout is 300 s; one LLM call must fit in the rest


def _site_text(url: str) -> str:
    try:
        page = fetch(url, get_settings().ssrf_allow_hosts, timeout=10, max_bytes=500_000)
    except (UnsafeUrlError, Exception) as exc:  # the site's text only improves the message
        logger.warning("site text unavailable", extra={"url": url, "error": str(exc)})
        return ""
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page.text, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()[:4000]


def _personalize(conn: Connection, tenant_id: str, target: dict[str, Any], ai_settings: dict[str, Any]) -> None:
    """AI mode: the LLM rewrites the rendered template for this company, from its own site's text."""
    site = _site_text(target["target_url"])
    messages = [
        {"role": "system", "content": "You personalise a B2B sales inquiry for one company. Keep the sender's facts, "
                                      "refer to the company's business in one sentence, stay polite and concise. "
                                      "Answer with the message text only."},
        {"role": "user", "content": f"Company: {target['company_name']}\nTheir site says: {site}\n\n"
                                    f"Message to personalise:\n{target['message']}"},
    ]
    completion = llm.complete(PERSONALIZE_STEP, messages, tenant_ai_settings=ai_settings,
                              offline_responder=lambda _: f"{llm.OFFLINE_LABEL}\n{target['message']}")
    store.set_target_message(conn, target["id"], completion.text)
    store.insert_ai_run(conn, target["id"], PERSONALIZE_STEP, model=completion.model,
                        prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                        cost_estimate=completion.cost_usd,
                        response={"text": completion.text, "offline": completion.offline, "site_chars": len(site)})


def prepare(event: dict) -> dict:
    """Personalise (AI mode) and queue the task's targets, writing their ids to S3 (``targets.json`` among the
    run's artifacts) for the Map to read: a task of 50,000 targets is a 2 MB file, not a state. The LLM calls
    are made one target per transaction and stop after ``PREPARE_BUDGET_SECONDS`` with ``more: true``; the
    state machine then calls ``prepare_more``, which carries on with the targets not personalised yet (an
    ``ai_runs`` row marks a personalised target, so a resumed task is never personalised twice either)."""
    tenant_id, task_id, phase = event["tenant_id"], event["task_id"], event["phase"]
    wanted = "approved" if phase == "submit" else "pending"
    with db.tenant_transaction(tenant_id) as conn:
        task = get_task(conn, task_id)
        if not event.get("continued"):
            runs.start_step(conn, event["run_id"], "prepare")
    if task["settings"].get("ai_mode") and phase != "submit":
        with db.tenant_transaction(tenant_id) as conn:
            targets = store.targets_to_prepare(conn, task_id, wanted)
            ai_settings = llm.tenant_ai_settings(conn)
            done = store.personalised_targets(conn, PERSONALIZE_STEP, [t["id"] for t in targets])
        deadline = time.monotonic() + PREPARE_BUDGET_SECONDS
        todo = [t for t in targets if t["id"] not in done]
        for index, target in enumerate(todo):
            with db.tenant_transaction(tenant_id) as conn:
                _personalize(conn, tenant_id, target, ai_settings)
            if time.monotonic() > deadline and index + 1 < len(todo):
                return {**{k: v for k, v in event.items() if k != "continued"}, "more": True,
                        "personalized": index + 1, "remaining": len(todo) - index - 1}
    with db.tenant_transaction(tenant_id) as conn:
        store.move_targets(conn, task_id, (wanted,), "queued")
        target_ids = [str(target_id) for target_id in store.target_ids(conn, task_id, "queued")]
        listed = runs.write_file(conn, tenant_id, event["run_id"], "prepare", TARGETS_FILE,
                                 json.dumps(target_ids).encode(), "application/json")
        runs.complete_step(conn, event["run_id"], "prepare", counts_toward_progress=False)
    # The state carries where the ids are, never the ids: the Map reads them from S3 (its ItemReader).
    return {**{k: v for k, v in event.items() if k != "continued"}, "more": False,
            "targets": {"key": listed["file_path"], "count": len(target_ids)}}


def prepare_more(event: dict) -> dict:
    return prepare({**event, "continued": True})


def prepare_failed(event: dict) -> dict:
    """Preparing failed for good (for example the AI model errors): the task and run fail, visibly."""
    error = event.get("error") or {}
    text = f"{error.get('Error', 'Error')}: {str(error.get('Cause', ''))[:500]}"
    tenant_id, task_id = event["tenant_id"], event["task_id"]
    with db.tenant_transaction(tenant_id) as conn:
        task = store.end_task(conn, task_id, "failed")
        store.move_targets(conn, task_id, ("queued",), "pending")
        runs.fail_step(conn, event["run_id"], "prepare", error=text)
        runs.update_run(conn, event["run_id"], status="failed", error_message=f"step prepare failed: {text}")
        if task and task["user_id"]:
            notify(tenant_id, recipient_user_ids=[str(task["user_id"])], category="outreach.task",
                   title=f"Send task \"{task['name']}\" failed", body=text, priority="HIGH",
                   channels=("IN_APP", "EMAIL"), related_entity_type="task", related_entity_id=task_id, conn=conn)
    dispatch_pending(tenant_id)
    return {"task_id": task_id, "status": "failed", "error": text}


def target_failed(event: dict) -> dict:
    """A target's browser job never reported back (timeout) or failed for good."""
    error = event.get("error") or {}
    with db.tenant_transaction(event["tenant_id"]) as conn:
        store.fail_unfinished_target(conn, event["target_id"],
                                     f"{error.get('Error', 'Error')}: {str(error.get('Cause', ''))[:300]}")
    return {"target_id": event["target_id"], "status": "failed"}


def finalize(event: dict) -> dict:
    tenant_id, task_id, phase = event["tenant_id"], event["task_id"], event["phase"]
    with db.tenant_transaction(tenant_id) as conn:
        task = get_task(conn, task_id, for_update=True)
        # Targets still queued were not dispatched (paused or cancelled task): back to where they were.
        store.move_targets(conn, task_id, ("queued", "running"), "approved" if phase == "submit" else "pending")
        counts = summary(conn, task_id)
        # Targets the worker deferred (outside the send window, over the daily cap) are still to send:
        # the task pauses instead of completing, and `start` resumes it.
        deferred = counts.get("approved" if phase == "submit" else "pending", 0) if phase != "review" else 0
        if task["status"] == "running":
            waiting_review = counts.get("review", 0) > 0 and phase == "review"
            new_status = "review" if waiting_review else "paused" if deferred else "completed"
            store.finish_run_of_task(conn, task_id, new_status)
        else:
            new_status = task["status"]
        runs.update_run(conn, event["run_id"], status="completed" if new_status != "paused" else "paused")
    if new_status == "paused" and deferred and task["user_id"]:
        notify(tenant_id, recipient_user_ids=[str(task["user_id"])], category="outreach.task",
               title=f"Send task \"{task['name']}\" paused: {deferred} targets deferred",
               body="Outside the send window or over the daily cap; start the task again to send them.",
               related_entity_type="task", related_entity_id=task_id)
    if new_status == "review" and task["user_id"]:
        notify(tenant_id, recipient_user_ids=[str(task["user_id"])], category="outreach.task",
               title=f"Send task \"{task['name']}\" is ready for review: {counts.get('review', 0)} forms filled",
               body="Approve or reject each target (screenshots of the filled forms are attached to it), then "
                    "start the task to send the approved ones.",
               related_entity_type="task", related_entity_id=task_id)
    elif new_status == "completed" and task["user_id"]:
        notify(tenant_id, recipient_user_ids=[str(task["user_id"])], category="outreach.task",
               template_id="task_finished", related_entity_type="task", related_entity_id=task_id,
               template_variables={"task_name": task["name"], "submitted": counts.get("submitted", 0),
                                   "failed": counts.get("failed", 0) + counts.get("captcha", 0)
                                   + counts.get("refused", 0) + counts.get("no_form", 0),
                                   "skipped": counts.get("skipped", 0)})
    return {"task_id": task_id, "status": new_status, "summary": counts}
