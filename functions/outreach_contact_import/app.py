"""Contact import queue consumer: one large CSV import job per record."""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.outreach.contacts import run_import_job
from funnel.platform.errors import NotFound

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    bind_tenant(message["tenant_id"])
    try:
        result = run_import_job(message["tenant_id"], message["import_job_id"])
    except NotFound:  # the tenant was deleted before its import ran: acknowledge
        logger.warning("contact import of an unknown tenant dropped", extra={"import_job": message["import_job_id"]})
        return
    logger.info("contact import finished", extra={"import_job": message["import_job_id"],
                                                  "imported": result.get("imported")})


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
