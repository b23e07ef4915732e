"""Browser worker (container image with Playwright + Chromium), fed by the browser queue one
message at a time; it reports each target's result back to the waiting state machine."""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.platform import aws
from funnel.observability import bind_tenant, logger
from funnel.outreach.worker import NoSlot, process

processor = BatchProcessor(event_type=EventType.SQS)


def _stepfunctions():
    return aws.client("stepfunctions")


def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    bind_tenant(message["tenant_id"])
    try:
        result = process(message["tenant_id"], message["task_id"], message["target_id"], message["phase"])
    except NoSlot as exc:  # the user's browser slots are busy: SQS brings the message back later
        logger.info("no browser slot", extra={"target": message["target_id"], "reason": str(exc)})
        raise
    _stepfunctions().send_task_success(taskToken=message["token"], output=json.dumps(result))


@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
