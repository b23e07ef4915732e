"""Email queue consumer: sends one campaign message per record (idempotent per message)."""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.email.campaigns import deliver
from funnel.observability import bind_tenant, logger

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    bind_tenant(message["tenant_id"])
    status = deliver(message["tenant_id"], message["message_id"])
    logger.info("campaign message processed", extra={"message": message["message_id"], "status": status})


@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
