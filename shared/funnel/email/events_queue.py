"""Tracking events that could not be written (database unreachable) wait in an SQS queue."""
from __future__ import annotations

import json

_sqs = None


def enqueue(payload: dict) -> None:
    global _sqs
    from funnel.settings import get_settings

    if _sqs is None:
        import boto3

        _sqs = boto3.client("sqs", region_name=get_settings().region)
    _sqs.send_message(QueueUrl=get_settings().tracking_events_queue_url, MessageBody=json.dumps(payload))


def write(payload: dict) -> None:
    from funnel.email.campaigns import record_event

    record_event(payload["tenant_id"], payload["message_id"], payload["type"], url=payload.get("url"),
                 user_agent=payload.get("user_agent"), ip=payload.get("ip"), method=payload.get("method", "GET"),
                 dedup_key=payload.get("dedup_key"))
