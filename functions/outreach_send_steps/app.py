"""Lambda tasks of the send pipeline: prepare (and prepare_more), prepare_failed, target_failed, finalize."""
from __future__ import annotations

from funnel.observability import bind_tenant, log_metrics, logger, tracer
from funnel.outreach import pipeline
from funnel.platform.errors import NotFound

ACTIONS = {"prepare": pipeline.prepare, "prepare_more": pipeline.prepare_more,
           "prepare_failed": pipeline.prepare_failed, "target_failed": pipeline.target_failed,
           "finalize": pipeline.finalize}


@tracer.capture_lambda_handler
@log_metrics
@logger.inject_lambda_context
def handler(event, context):
    bind_tenant(event["tenant_id"])
    try:
        return ACTIONS[event["action"]](event)
    except NotFound:  # the tenant was deleted while its task ran: nothing is left to record
        logger.warning("send pipeline step for an unknown tenant ignored", extra={"action": event["action"]})
        return {"task_id": event.get("task_id"), "target_id": event.get("target_id"), "status": "gone"}
