"""Tracking events that could not be written (database unreachable) wait in an SQS queue."""
from __future__ import annotations

import json


def enqueue(payload: dict) -> None:
    from funnel.platform import aws
    from funnel.settings import get_settings

    aws.client("sqs").send_message(QueueUrl=get_settings().tracking_events_queue_url, MessageBody=json.dumps(payload))


def write(payload: dict) -> None:
    from funnel.email.events import record_event

    record_event(payload["tenant_id"], payload["message_id"], payload["type"], url=payload.get("url"),
                 user_agent=payload.get("user_agent"), ip=payload.get("ip"), method=payload.get("method", "GET"),
                 dedup_key=payload.get("dedup_key"), reminder_round=payload.get("reminder_round"))
