"""Email queue consumer: sends one campaign message (or reminder round) per record, idempotent per message;
a campaign record fans out into one record per message."""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.email.campaigns import EmailThrottled, deliver, fan_out
from funnel.observability import bind_tenant, logger
from funnel.platform.errors import NotFound
from funnel.platform import aws
from funnel.settings import get_settings

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    bind_tenant(message["tenant_id"])
    if "campaign_id" in message:  # a campaign to fan out into one record per message
        try:
            queued = fan_out(message["tenant_id"], message["campaign_id"], message.get("after"))
        except NotFound:
            return
        logger.info("campaign fanned out", extra={"campaign_id": message["campaign_id"], "queued": queued})
        return
    try:
        status = deliver(message["tenant_id"], message["message_id"], int(message.get("reminder_round") or 0))
    except NotFound:  # the tenant (or its campaign) was deleted: nothing can ever be sent, so acknowledge
        logger.warning("campaign message for a deleted tenant or campaign dropped",
                       extra={"email_message_id": message["message_id"]})
        return
    except EmailThrottled as exc:
        # Not a failure: queue it again for later, so throttling can never push it into the DLQ.
        settings = get_settings()
        aws.client("sqs").send_message(QueueUrl=settings.email_queue_url, MessageBody=record.body,
                                       DelaySeconds=min(900, exc.retry_after or settings.email_throttle_delay_seconds))
        logger.info("campaign message throttled", extra={"email_message_id": message["message_id"], "reason": str(exc)})
        return
    logger.info("campaign message processed", extra={"email_message_id": message["message_id"], "status": status})


@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
