"""What EventBridge Scheduler invokes for a content cron schedule."""
from __future__ import annotations

from funnel.content.schedules import fire
from funnel.observability import log_metrics, tracer


@tracer.capture_lambda_handler
@log_metrics
def handler(event, context):
    return fire(str(event["tenant_id"]), str(event["schedule_id"]), event.get("scheduled_time"))
