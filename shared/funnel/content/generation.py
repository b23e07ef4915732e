"""Article generation runs: the subscription gate, creating a pipeline run, and starting, pausing, resuming and
cancelling its Step Functions execution (``statemachines/content_article_pipeline.asl.json``).

Runs are the platform's (``funnel.platform.runs``); a run started by a schedule carries its ``schedule_job_id``
and its job follows it (``store_schedules``). The subscription gate is billing's (``funnel.billing.limits``).
"""
from __future__ import annotations

import json
from typing import Any

from funnel import db
from funnel.billing import limits
from funnel.content import store_schedules, store_sites
from funnel.content.models import ArticlePipelineRun
from funnel.content.service import get_product, user_id_of
from funnel.db import Connection, Row
from funnel.platform import audit, aws, runs, tenants
from funnel.platform.errors import Conflict, ServiceUnavailable, ValidationFailed
from funnel.platform.principal import Principal
from funnel.settings import get_settings

RUN_KIND = "article_pipeline"


def steps_total(articles_count: int, with_images: bool) -> int:
    """AnalyzeProduct + PlanCluster, per article WriteArticle (+ GenerateImage) + Publish, then Finalize."""
    return 2 + articles_count * (3 if with_images else 2) + 1


def create_pipeline_run(conn: Connection, principal: Principal | str, product_id: str, *, articles_count: int,
                        publish_mode: str, schedule_job_id: str | None = None) -> Row:
    """Validate that the product can run and create the run row (the caller starts it after commit)."""
    product = get_product(conn, product_id)
    if not product["site_id"]:
        raise ValidationFailed("the product has no WordPress site: set site_id first")
    site = store_sites.site_credentials(conn, str(product["site_id"]))
    if site is None or not site["wp_api_token"] or not site["wp_username"]:
        raise ValidationFailed("the product's WordPress site has no application password "
                               "(set wp_username and wp_api_token)")
    if site["status"] == "suspended":
        raise ValidationFailed("the product's WordPress site is suspended")
    with_images = product["image_style"] != "none"
    config = {"product_id": str(product_id), "site_id": str(product["site_id"]), "articles_count": articles_count,
              "publish_mode": publish_mode, "with_images": with_images, "schedule_job_id": schedule_job_id,
              "executions": 0}
    created_by = user_id_of(principal) if isinstance(principal, Principal) else None
    run = runs.create_run(conn, RUN_KIND, config, created_by, steps_total(articles_count, with_images))
    audit.record(conn, principal, "run.create", "run", run["id"], {"kind": RUN_KIND, "product_id": str(product_id)})
    return run


def _sfn():  # a boto3 client (untyped: no stubs are installed)
    return aws.client("stepfunctions")


def start_execution(tenant_id: str, run_id: str) -> ArticlePipelineRun:
    """Start (or, for a resume, start again) the run's state machine execution."""
    settings = get_settings()
    if not settings.article_pipeline_arn:
        raise ValidationFailed("the article pipeline is not configured (FUNNEL_ARTICLE_PIPELINE_ARN)")
    with db.tenant_transaction(tenant_id) as conn:
        run = runs.get_run(conn, run_id, for_update=True)
        config = dict(run["config"] or {})
        config["executions"] = int(config.get("executions", 0)) + 1
        runs.update_run(conn, run_id, config=config)
    name = f"{run_id}-{config['executions']}"
    try:
        execution = _sfn().start_execution(stateMachineArn=settings.article_pipeline_arn, name=name,
                                           input=json.dumps({"tenant_id": tenant_id, "run_id": str(run_id)}))
    except Exception as exc:
        with db.tenant_transaction(tenant_id) as conn:
            runs.update_run(conn, run_id, status="failed", error_message=f"could not start the pipeline: {exc}")
        raise ServiceUnavailable("the article pipeline cannot be started; the run is failed, resume it later") \
            from exc
    with db.tenant_transaction(tenant_id) as conn:
        return ArticlePipelineRun.model_validate(runs.update_run(
            conn, run_id, status="running", execution_arn=execution["executionArn"], error_message=None))


def take_articles(conn: Connection, tenant_id: str, articles_count: int) -> None:
    """The billing gate of a new run, API or schedule (402): an active subscription, and the month's articles
    taken in ``conn``'s transaction, which rolls back with the run if anything refuses."""
    limits.check_subscription(tenant_id)
    limits.use(conn, tenant_id, "articles", articles_count)


def start_generation(principal: Principal, product_id: str, articles_count: int,
                     publish_mode: str) -> ArticlePipelineRun:
    if publish_mode == "publish":
        tenants.require_email_verified(principal.tenant_id)
    with db.tenant_transaction(principal.tenant_id) as conn:
        take_articles(conn, principal.tenant_id, articles_count)
        run = create_pipeline_run(conn, principal, product_id, articles_count=articles_count,
                                  publish_mode=publish_mode)
    return start_execution(principal.tenant_id, str(run["id"]))


def _owned_run(conn: Connection, run_id: str) -> Row:
    run = runs.get_run(conn, run_id, for_update=True)
    if run["kind"] != RUN_KIND:
        raise Conflict(f"runs of kind {run['kind']!r} are not controlled here")
    return run


def _execution_running(run: dict[str, Any]) -> bool:
    if not run["execution_arn"]:
        return False
    return _sfn().describe_execution(executionArn=run["execution_arn"])["status"] == "RUNNING"


def pause_run(principal: Principal, run_id: str) -> ArticlePipelineRun:
    with db.tenant_transaction(principal.tenant_id) as conn:
        run = _owned_run(conn, run_id)
        if run["status"] not in ("pending", "running"):
            raise Conflict(f"a {run['status']} run cannot be paused")
        row = runs.update_run(conn, run_id, status="paused")
        audit.record(conn, principal, "run.pause", "run", run_id)
    return ArticlePipelineRun.model_validate(row)


def resume_run(principal: Principal, run_id: str) -> ArticlePipelineRun:
    """Continue a failed or paused run: finished steps are skipped (their artifacts are reused)."""
    limits.check_subscription(principal.tenant_id)
    with db.tenant_transaction(principal.tenant_id) as conn:
        run = _owned_run(conn, run_id)
        if run["status"] not in ("failed", "paused"):
            raise Conflict(f"a {run['status']} run cannot be resumed")
        halted = (run["config"] or {}).get("halted_execution")
        still_running = (run["status"] == "paused" and halted != run["execution_arn"] and _execution_running(run))
        row = runs.update_run(conn, run_id, status="running" if still_running else "pending", error_message=None)
        job = (run["config"] or {}).get("schedule_job_id")
        if job:
            store_schedules.job_running_again(conn, job)
        audit.record(conn, principal, "run.resume", "run", run_id)
    if still_running:  # the execution never stopped: its next step sees the run running again
        return ArticlePipelineRun.model_validate(row)
    return start_execution(principal.tenant_id, run_id)


def cancel_run(principal: Principal, run_id: str) -> ArticlePipelineRun:
    with db.tenant_transaction(principal.tenant_id) as conn:
        run = _owned_run(conn, run_id)
        if run["status"] in ("completed", "cancelled"):
            raise Conflict(f"a {run['status']} run cannot be cancelled")
        row = runs.update_run(conn, run_id, status="cancelled")
        job = (run["config"] or {}).get("schedule_job_id")
        if job:
            store_schedules.job_failed(conn, job, "cancelled")
        audit.record(conn, principal, "run.cancel", "run", run_id)
    if run["execution_arn"] and _execution_running(run):
        try:
            _sfn().stop_execution(executionArn=run["execution_arn"], error="Cancelled", cause="cancelled by a user")
        except Exception:  # already finished in between: the status above is what counts
            pass
    return ArticlePipelineRun.model_validate(row)
