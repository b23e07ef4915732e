"""What EventBridge Scheduler invokes for a content cron schedule."""
from __future__ import annotations

from funnel.content.schedules import fire


def handler(event, context):
    return fire(str(event["tenant_id"]), str(event["schedule_id"]), event.get("scheduled_time"))
