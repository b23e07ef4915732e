"""Browser worker (container image with Playwright + Chromium), fed by OutreachBrowserQueue one
message at a time; it reports each target's result back to the waiting OutreachSendPipeline.

Every message carries the task token of its Map iteration. The worker first sends a heartbeat:
if the pipeline no longer waits for that token (the state timed out and was retried with a new
message, or the task was stopped), the message is dropped without opening a browser. Busy
browser slots and failed attempts are reported with SendTaskFailure (``Outreach.NoSlot``,
``Outreach.Retry``) so the state machine owns the backoff (its retry loop sends a new message with
a new token); only a crash leaves the message to SQS (redelivered after the visibility timeout,
then the DLQ) and the state's heartbeat timeout re-dispatches the target.
"""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.outreach.worker import NoSlot, RetryLater, close_warm_browser, process
from funnel.platform import aws

processor = BatchProcessor(event_type=EventType.SQS)
GONE = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")


def _stepfunctions():
    return aws.client("stepfunctions")


def _report(call: str, **arguments) -> bool:
    """Send a task-token call; False when the pipeline no longer waits for this token."""
    sfn = _stepfunctions()
    try:
        getattr(sfn, call)(**arguments)
        return True
    except sfn.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in GONE:
            return False
        raise


def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    bind_tenant(message["tenant_id"])
    token, target = message["token"], message["target_id"]
    if not _report("send_task_heartbeat", taskToken=token):
        logger.info("the send pipeline no longer waits for this message; dropped", extra={"target": target})
        return
    try:
        result = process(message["tenant_id"], message["task_id"], target, message["phase"])
    except (NoSlot, RetryLater) as exc:
        error = "Outreach.NoSlot" if isinstance(exc, NoSlot) else "Outreach.Retry"
        logger.info("browser job to be retried by the pipeline", extra={"target": target, "error": error,
                                                                          "reason": str(exc)})
        _report("send_task_failure", taskToken=token, error=error, cause=str(exc)[:32_000])
        return
    if not _report("send_task_success", taskToken=token, output=json.dumps(result)):
        # The result is recorded on the target already; the state had given up waiting.
        logger.warning("result reported after the pipeline stopped waiting", extra={"target": target})


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


def shutdown() -> None:
    """The execution environment is ending: close the calling thread's warm browser.

    On Lambda the environment's processes simply end with it; an in-process host that runs this handler
    on several threads (the local runtime's SQS pollers) calls this from each thread as it stops."""
    close_warm_browser()
