"""Notifications queue consumer: one delivery per record, partial batch failures reported."""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.notifications.delivery import DeliveryError, backoff_seconds, deliver
from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.platform import aws
from funnel.platform.errors import NotFound
from funnel.settings import get_settings

processor = BatchProcessor(event_type=EventType.SQS)


def _delay_next_attempt(record: SQSRecord, seconds: int) -> None:
    """Exponential backoff: the failed message becomes visible again only after ``seconds``."""
    try:
        aws.client("sqs").change_message_visibility(QueueUrl=get_settings().notifications_queue_url,
                                       ReceiptHandle=record.receipt_handle, VisibilityTimeout=seconds)
    except Exception:  # the queue's own visibility timeout still brings it back
        logger.exception("could not set the retry delay")


def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    bind_tenant(message["tenant_id"])
    try:
        status = deliver(message["tenant_id"], message["id"],
                         receive_count=int(record.attributes.approximate_receive_count or 1))
    except NotFound:  # the tenant was deleted: nothing can ever be delivered, so acknowledge
        logger.warning("notification of an unknown tenant dropped", extra={"notification": message["id"]})
        return
    except DeliveryError as exc:
        retries = int(record.attributes.approximate_receive_count or 1)
        _delay_next_attempt(record, backoff_seconds(retries))
        logger.warning("notification delivery failed", extra={"notification": message["id"], "error": str(exc)})
        raise
    logger.info("notification delivered", extra={"notification": message["id"], "status": status})


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
