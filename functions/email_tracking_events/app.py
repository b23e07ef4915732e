"""Writes tracking events that were queued while the database was unreachable."""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.email.events_queue import write
from funnel.observability import log_metrics, logger, tracer
from funnel.platform.errors import NotFound

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    try:
        write(json.loads(record.body))
    except NotFound:  # the tenant was deleted since the event was queued: nothing to record it in
        logger.warning("tracking event for a deleted tenant dropped")


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
