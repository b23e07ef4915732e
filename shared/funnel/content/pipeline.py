"""Running the article pipeline's steps (statemachines/content_article_pipeline.asl.json); the steps
themselves are in ``pipeline_steps``.

Each Task calls :func:`run_step` with ``{"step", "tenant_id", "run_id"[, "article_id"]}``.
A step:
1. stops with ``RunHalted`` when the run was paused or cancelled;
2. returns its stored reference when it already completed (a resumed run
   reuses artifacts, so finished articles are not redone);
3. records ``start_step`` (a re-start counts as a retry), does its work,
   writes ``storage/{tenant}/{run}/{step}/output.json`` with its sha256 and
   returns only ``{output_path, output_digest, summary, metrics}``.
A failure is recorded on the step (``fail_step``) and re-raised with its class
name, which the state machine's Retry/Catch match on.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from funnel import db
from funnel.content import store_pipeline, store_schedules
from funnel.content.errors import PermanentError, RunHalted
from funnel.content.pipeline_steps import STEPS, Ctx, StepResult, output_key
from funnel.db import Connection, Row
from funnel.notifications.service import dispatch_pending, notify
from funnel.platform import runs, storage
from funnel.platform.errors import NotFound

log = logging.getLogger("funnel.content.pipeline")


def _stored_reference(ctx: Ctx) -> dict[str, Any] | None:
    """The reference a completed step returned (rebuilt from its stored output, digest-checked); None when the
    step has not completed or its output is not recorded (then it runs again)."""
    with db.tenant_transaction(ctx.tenant_id) as conn:
        if runs.step_status(conn, ctx.run_id, ctx.step, ctx.item_key) != "completed":
            return None
        key = output_key(ctx, ctx.step, ctx.item_key)
        digest = store_pipeline.artifact_digest(conn, ctx.run_id, key)
    if digest is None:
        return None
    output = storage.get_json(key, digest)
    return {"output_path": key, "output_digest": digest, "summary": output.get("_summary", ""),
            "metrics": {**output.get("_metrics", {}), "reused": True}}


def _record_halt_if_paused(conn: Connection, run: Row) -> None:
    """Under the run's row lock: this execution stops because the run is paused. A resume then either came first
    (the run is running again and the execution goes on) or sees this and starts a new execution, however long
    Step Functions still reports the stopping one as RUNNING."""
    if run["status"] == "paused":
        runs.update_run(conn, str(run["id"]), config={**(run["config"] or {}),
                                                      "halted_execution": run["execution_arn"]})


def _begin(ctx: Ctx) -> None:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        run = runs.get_run(conn, ctx.run_id, for_update=True)
        _record_halt_if_paused(conn, run)
        if run["status"] not in ("paused", "cancelled"):
            if run["status"] in ("pending", "failed"):
                runs.update_run(conn, ctx.run_id, status="running")
            ctx.config = run["config"] or {}
            runs.start_step(conn, ctx.run_id, ctx.step, ctx.item_key)
    if run["status"] in ("paused", "cancelled"):  # raised after the commit, which keeps the recorded halt
        raise RunHalted(f"the run is {run['status']}")


def _finish(ctx: Ctx, result: StepResult) -> dict[str, Any]:
    output = {**result.output, "_summary": result.summary, "_metrics": result.metrics}
    with db.tenant_transaction(ctx.tenant_id) as conn:
        reference = runs.write_output(conn, ctx.tenant_id, ctx.run_id, ctx.step, output, summary=result.summary,
                                      metrics=result.metrics, item_key=ctx.item_key)
        runs.complete_step(conn, ctx.run_id, ctx.step, ctx.item_key, token_usage=result.token_usage,
                           cost_usd=result.cost_usd, llm_model=result.llm_model)
    return reference


def _fail(ctx: Ctx, exc: Exception) -> None:
    try:
        with db.tenant_transaction(ctx.tenant_id) as conn:
            runs.fail_step(conn, ctx.run_id, ctx.step, ctx.item_key, f"{type(exc).__name__}: {exc}")
    except Exception:  # the original error matters more
        log.exception("could not record the failure of %s", ctx.step)


def _complete_run(ctx: Ctx, reference: dict[str, Any]) -> None:
    with db.tenant_transaction(ctx.tenant_id) as conn:
        run = runs.get_run(conn, ctx.run_id, for_update=True)
        _record_halt_if_paused(conn, run)  # a resume starts a new execution, which completes the run
        if run["status"] in ("paused", "cancelled"):
            return
        runs.update_run(conn, ctx.run_id, status="completed", current_step="finalize", error_message=None)
        job = (run["config"] or {}).get("schedule_job_id")
        if job:
            store_schedules.job_completed(conn, job, reference["metrics"].get("published", 0))


def run_step(event: dict[str, Any]) -> dict[str, Any]:
    step = event["step"]
    if step == "record_failure":
        return record_failure(event)
    if step not in STEPS:
        raise PermanentError(f"unknown pipeline step {step!r}")
    ctx = Ctx(str(event["tenant_id"]), str(event["run_id"]), step, str(event.get("article_id") or ""), {})
    reference = _stored_reference(ctx)
    if reference is None:
        _begin(ctx)
        try:
            reference = _finish(ctx, STEPS[step](ctx))
        except Exception as exc:
            _fail(ctx, exc)
            raise
    if step == "finalize":
        _complete_run(ctx, reference)
    return reference


# ---------------------------------------------------------------- failure
def _short_cause(cause: str | None) -> str:
    try:
        parsed = json.loads(cause or "")
        if isinstance(parsed, dict):
            return str(parsed.get("errorMessage") or parsed.get("Cause") or cause)
    except ValueError:
        pass
    return cause or ""


def record_failure(event: dict[str, Any]) -> dict[str, Any]:
    """The Catch of every state: mark the run failed (unless paused/cancelled) and tell its owner."""
    tenant_id, run_id = str(event["tenant_id"]), str(event["run_id"])
    error = event.get("error") or {}
    error_name = str(error.get("Error") or "Error")
    message = f"{error_name}: {_short_cause(error.get('Cause'))}"[:2000]
    try:
        return _record_failure(tenant_id, run_id, error_name, message)
    except NotFound:  # the tenant or the run was deleted while the execution ran: nothing left to mark
        log.warning("run %s of tenant %s is gone; failure %s not recorded", run_id, tenant_id, message)
        return {"halted": True, "status": "gone"}


def _record_failure(tenant_id: str, run_id: str, error_name: str, message: str) -> dict[str, Any]:
    with db.tenant_transaction(tenant_id) as conn:
        run = runs.get_run(conn, run_id, for_update=True)
        if run["status"] in ("paused", "cancelled") or error_name == "RunHalted":
            return {"halted": True, "status": run["status"]}
        failed_step = store_pipeline.last_failed_step(conn, run_id)
        where = failed_step["step"] if failed_step else run["current_step"]
        text = f"step {where} failed: {message}"
        runs.update_run(conn, run_id, status="failed", error_message=text)
        job = (run["config"] or {}).get("schedule_job_id")
        if job:
            store_schedules.job_failed(conn, job, text)
        recipients = [str(run["created_by"])] if run["created_by"] else store_pipeline.active_admin_ids(conn)
        # In the same transaction: a run is never seen failed without its notification.
        notify_failure(conn, tenant_id, run_id, recipients, text)
    dispatch_pending(tenant_id)  # the e-mail copy could only be queued after the commit
    return {"halted": False, "status": "failed"}


def notify_failure(conn: Connection, tenant_id: str, run_id: str, recipients: list[str], text: str) -> None:
    """Tell the run's owner (or the admins) in the app and by e-mail that the run failed and can resume."""
    if recipients:
        notify(tenant_id, recipient_user_ids=recipients, category="content.run_failed",
               title="Article generation failed", body=f"{text}\nResume it with POST /v1/runs/{run_id}/resume.",
               priority="HIGH", channels=("IN_APP", "EMAIL"), related_entity_type="run", related_entity_id=run_id,
               conn=conn)
