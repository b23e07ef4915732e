"""Email queue consumer: sends one campaign message (or reminder round) per record, idempotent per message;
a campaign record fans out into one record per message."""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.email.delivery import deliver
from funnel.email.sending import fan_out
from funnel.email.transport import EmailThrottled
from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.platform import aws
from funnel.platform.errors import NotFound
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
    ids = message.get("message_ids") or [message["message_id"]]
    failed = []
    for index, message_id in enumerate(ids):
        try:
            status = deliver(message["tenant_id"], message_id, int(message.get("reminder_round") or 0))
        except NotFound:  # the tenant (or its campaign) was deleted: nothing can ever be sent, so acknowledge
            logger.warning("campaign message for a deleted tenant or campaign dropped",
                           extra={"email_message_id": message_id})
            return
        except EmailThrottled as exc:
            # Not a failure: the rest waits and is queued again, so throttling never pushes it into the DLQ.
            _requeue(message, ids[index:], exc.retry_after or get_settings().email_throttle_delay_seconds)
            logger.info("campaign messages throttled", extra={"email_message_id": message_id, "reason": str(exc),
                                                              "waiting": len(ids) - index})
            break
        except Exception:
            if len(ids) == 1:
                raise  # the queue retries it, then the DLQ keeps it
            logger.exception("campaign message failed; retried on its own", extra={"email_message_id": message_id})
            failed.append(message_id)
            continue
        logger.info("campaign message processed", extra={"email_message_id": message_id, "status": status})
    for message_id in failed:  # one bad message must not hold back (or dead-letter) the others of its record
        _requeue(message, [message_id], 0)


def _requeue(message: dict, ids: list[str], delay: int) -> None:
    body = {k: v for k, v in message.items() if k not in ("message_id", "message_ids")}
    aws.client("sqs").send_message(QueueUrl=get_settings().email_queue_url, DelaySeconds=min(900, delay),
                                   MessageBody=json.dumps({**body, "message_ids": ids}))


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
