"""Community touches queue consumer: each record is one touch (funnel.community.touches: an e-mail click, a form
submission) recorded as an activity by funnel.community.crossarea.record.

Idempotent: a touch's dedup key makes a redelivered record (or a touch sent twice) one activity. A record that is
not a touch is logged and dropped (retrying cannot mend it); a deleted tenant's touch is dropped; anything else
fails only its record, which the queue retries and finally moves to the DLQ."""
from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from funnel.community import crossarea, touches
from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.platform.errors import NotFound

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str | None:
    try:
        touch = touches.parse(record.body)
    except ValidationError:
        logger.warning("not a community touch: dropped", extra={"message_id": record.message_id})
        return None
    bind_tenant(str(touch.tenant_id))
    try:
        outcome = crossarea.record(touch)
    except NotFound:  # the tenant was deleted since the touch was queued
        logger.warning("touch of an unknown tenant dropped", extra={"touch_id": touch.touch_id})
        return None
    logger.info("touch recorded", extra={"kind": touch.kind, "touch_id": touch.touch_id, "outcome": outcome})
    return outcome


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
