"""Lambda tasks of the send pipeline (statemachines/send_pipeline.asl.json)."""
from __future__ import annotations

import re
import time

from psycopg.types.json import Jsonb

from funnel import db
from funnel.notifications.service import dispatch_pending, notify
from funnel.observability import logger
from funnel.outreach.tasks import summary
from funnel.platform import llm, runs
from funnel.platform.ssrf import UnsafeUrlError, fetch
from funnel.settings import get_settings

PERSONALIZE_STEP = "personalize_message"
PREPARE_BUDGET_SECONDS = 200.0  # SendStepsFunction's Timeout is 300 s; one LLM call must fit in the rest


def _site_text(url: str) -> str:
    try:
        page = fetch(url, get_settings().ssrf_allow_hosts, timeout=10, max_bytes=500_000)
    except (UnsafeUrlError, Exception) as exc:  # the site's text only improves the message
        logger.warning("site text unavailable", extra={"url": url, "error": str(exc)})
        return ""
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page.text, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()[:4000]


def _personalize(conn, tenant_id: str, target: dict, ai_settings: dict) -> None:
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
    conn.execute("UPDATE task_targets SET message = %s WHERE id = %s", (completion.text, target["id"]))
    conn.execute("INSERT INTO ai_runs (task_target_id, step, model, prompt_tokens, completion_tokens, cost_estimate, "
                 "response_json) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (target["id"], PERSONALIZE_STEP, completion.model, completion.prompt_tokens,
                  completion.completion_tokens, completion.cost_usd,
                  Jsonb({"text": completion.text, "offline": completion.offline, "site_chars": len(site)})))


def prepare(event: dict) -> dict:
    """Personalise (AI mode) and queue the task's targets. The LLM calls are made one target per
    transaction and stop after ``PREPARE_BUDGET_SECONDS`` with ``more: true``; the state machine then
    calls ``prepare_more``, which carries on with the targets not personalised yet (an ``ai_runs`` row
    marks a personalised target, so a resumed task is never personalised twice either)."""
    tenant_id, task_id, phase = event["tenant_id"], event["task_id"], event["phase"]
    wanted = "approved" if phase == "submit" else "pending"
    with db.tenant_transaction(tenant_id) as conn:
        task = conn.execute("SELECT settings FROM tasks WHERE id = %s", (task_id,)).fetchone()
        targets = conn.execute("SELECT id, target_url, company_name, message FROM task_targets WHERE task_id = %s "
                               "AND status = %s ORDER BY created_at, id", (task_id, wanted)).fetchall()
        if not event.get("continued"):
            runs.start_step(conn, event["run_id"], "prepare")
    if task["settings"].get("ai_mode") and phase != "submit":
        with db.tenant_transaction(tenant_id) as conn:
            ai_settings = (conn.execute("SELECT ai_settings FROM system_settings").fetchone() or {}).get("ai_settings")
            done = {r["task_target_id"] for r in conn.execute(
                "SELECT DISTINCT task_target_id FROM ai_runs WHERE step = %s AND task_target_id = ANY(%s::uuid[])",
                (PERSONALIZE_STEP, [t["id"] for t in targets]))}
        deadline = time.monotonic() + PREPARE_BUDGET_SECONDS
        todo = [t for t in targets if t["id"] not in done]
        for index, target in enumerate(todo):
            with db.tenant_transaction(tenant_id) as conn:
                _personalize(conn, tenant_id, target, ai_settings or {})
            if time.monotonic() > deadline and index + 1 < len(todo):
                return {**{k: v for k, v in event.items() if k != "continued"}, "more": True,
                        "personalized": index + 1, "remaining": len(todo) - index - 1}
    with db.tenant_transaction(tenant_id) as conn:
        conn.execute("UPDATE task_targets SET status = 'queued' WHERE task_id = %s AND status = %s", (task_id, wanted))
        runs.complete_step(conn, event["run_id"], "prepare", counts_toward_progress=False)
    return {**{k: v for k, v in event.items() if k != "continued"}, "more": False,
            "target_ids": [str(t["id"]) for t in targets]}


def prepare_more(event: dict) -> dict:
    return prepare({**event, "continued": True})


def prepare_failed(event: dict) -> dict:
    """Preparing failed for good (for example the AI model errors): the task and run fail, visibly."""
    error = event.get("error") or {}
    text = f"{error.get('Error', 'Error')}: {str(error.get('Cause', ''))[:500]}"
    tenant_id, task_id = event["tenant_id"], event["task_id"]
    with db.tenant_transaction(tenant_id) as conn:
        task = conn.execute("UPDATE tasks SET status = 'failed', finished_at = now() WHERE id = %s "
                            "RETURNING name, user_id", (task_id,)).fetchone()
        conn.execute("UPDATE task_targets SET status = 'pending' WHERE task_id = %s AND status = 'queued'", (task_id,))
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
        conn.execute("UPDATE task_targets SET status = 'failed', result_summary = %s, last_attempt_at = now() "
                     "WHERE id = %s AND status IN ('queued', 'running', 'pending', 'approved')",
                     (f"{error.get('Error', 'Error')}: {str(error.get('Cause', ''))[:300]}", event["target_id"]))
    return {"target_id": event["target_id"], "status": "failed"}


def finalize(event: dict) -> dict:
    tenant_id, task_id, phase = event["tenant_id"], event["task_id"], event["phase"]
    with db.tenant_transaction(tenant_id) as conn:
        task = conn.execute("SELECT name, user_id, status FROM tasks WHERE id = %s FOR UPDATE", (task_id,)).fetchone()
        # Targets still queued were not dispatched (paused or cancelled task): back to where they were.
        conn.execute("UPDATE task_targets SET status = %s WHERE task_id = %s AND status IN ('queued', 'running')",
                     ("approved" if phase == "submit" else "pending", task_id))
        counts = summary(conn, task_id)
        # Targets the worker deferred (outside the send window, over the daily cap) are still to send:
        # the task pauses instead of completing, and `start` resumes it.
        deferred = counts.get("approved" if phase == "submit" else "pending", 0) if phase != "review" else 0
        if task["status"] == "running":
            waiting_review = counts.get("review", 0) > 0 and phase == "review"
            new_status = "review" if waiting_review else "paused" if deferred else "completed"
            conn.execute("UPDATE tasks SET status = %s, finished_at = CASE WHEN %s = 'completed' THEN now() END "
                         "WHERE id = %s", (new_status, new_status, task_id))
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
