"""Lambda tasks of the send pipeline: prepare, target_failed, finalize."""
from __future__ import annotations

from funnel.observability import bind_tenant, logger
from funnel.outreach import pipeline

ACTIONS = {"prepare": pipeline.prepare, "prepare_failed": pipeline.prepare_failed,
           "target_failed": pipeline.target_failed, "finalize": pipeline.finalize}


@logger.inject_lambda_context
def handler(event, context):
    bind_tenant(event["tenant_id"])
    return ACTIONS[event["action"]](event)
