"""Activity import queue consumer: one CSV import job per record (funnel.community.imports.run_import).

A retried record (the function timed out or failed) resumes the job after its last committed chunk; every row's
dedup key keeps a chunk written twice from inserting twice."""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.community.imports import run_import
from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.platform.errors import NotFound

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


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
