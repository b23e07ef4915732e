"""Activity import queue consumer: one CSV import job per record (funnel.community.imports.run_import).

A retried record (the function timed out or failed) resumes the job after its last committed chunk; every row's
dedup key keeps a chunk written twice from inserting twice.

Hourly (the ``StalledImportsSweep`` schedule, event ``{"sweep": "stalled-imports"}``), in every tenant: a job
with no progress for longer than the queue keeps retrying its message (its message is in the dead-letter queue,
or was never sent) is failed with an error saying so, for its user to retry; uploads never imported in time are
deleted (funnel.community.imports.sweep)."""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.community.imports import run_import, sweep
from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.platform.errors import NotFound
from funnel.platform.tenants import active_tenant_ids

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    bind_tenant(message["tenant_id"])
    try:
        result = run_import(message["tenant_id"], message["job_id"])
    except NotFound:  # the tenant was deleted before its import ran: acknowledge
        logger.warning("activity import of an unknown tenant dropped", extra={"job_id": message["job_id"]})
        return
    logger.info("activity import finished", extra={"job_id": message["job_id"], "status": result.get("status"),
                                                   "inserted": result.get("inserted")})


def sweep_tenants() -> dict[str, int]:
    failed_jobs = expired_uploads = failed_tenants = 0
    for tenant_id in active_tenant_ids():
        bind_tenant(tenant_id)
        try:
            done = sweep(tenant_id)
            failed_jobs += done["failed_jobs"]
            expired_uploads += done["expired_uploads"]
        except Exception:  # one broken tenant database must not stop the others
            failed_tenants += 1
            logger.exception("the activity import sweep failed for a tenant")
    bind_tenant(None)
    return {"failed_jobs": failed_jobs, "expired_uploads": expired_uploads, "failed_tenants": failed_tenants}


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    if event.get("sweep") == "stalled-imports":
        return sweep_tenants()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
