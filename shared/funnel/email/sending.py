"""Sending a campaign, up to the queue: ``send`` (now, or scheduled for ``send_at``), the 5-minute schedule's
``send_scheduled``, and the sender's ``fan_out`` of a campaign record into records of message ids, which
``delivery.deliver`` sends one by one. Also the writers of the email queue (``reminders`` queues its rounds
through them)."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from funnel import db
from funnel.billing import limits
from funnel.db import Connection
from funnel.email import campaigns, store_campaigns, store_messages
from funnel.platform import audit, aws, tenants
from funnel.platform.errors import Conflict, ServiceUnavailable
from funnel.platform.principal import Principal
from funnel.settings import get_settings

SEND_BATCH = 10  # entries per SQS SendMessageBatch call (its maximum)
FAN_OUT_CHUNK = 1000
IDS_PER_RECORD = 10  # messages per sender record: 10x fewer queue operations, each still sent once


def _queue():
    return aws.client("sqs")


def queue_record(body: dict[str, Any]) -> None:
    """Put one record on the email queue."""
    _queue().send_message(QueueUrl=get_settings().email_queue_url, MessageBody=json.dumps(body))


def queue_records(bodies: list[dict[str, Any]]) -> None:
    """Queue records on the email queue, SEND_BATCH per call. Raises if any entry was refused, so the caller's
    record (or transaction) is retried rather than a message silently never queued."""
    queue_url = get_settings().email_queue_url
    for start in range(0, len(bodies), SEND_BATCH):
        answer = _queue().send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps(body)} for i, body in enumerate(bodies[start:start + SEND_BATCH])])
        if answer.get("Failed"):
            raise RuntimeError(f"the email queue refused {len(answer['Failed'])} records: {answer['Failed'][0]}")


def send(principal: Principal, campaign_id: str, send_at: datetime | None = None) -> dict[str, Any]:
    """Send now (queue one message per queued recipient) or at ``send_at`` (the 5-minute schedule sends it)."""
    tenants.require_email_verified(principal.tenant_id)
    limits.check_subscription(principal.tenant_id)  # 402 while canceled, unpaid or past due beyond the grace period
    limits.check_plan_allows(principal.tenant_id, "emails")  # each message takes its own when it is sent (delivery)
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaign = campaigns.get_campaign(conn, campaign_id, for_update=True)
        if campaign["status"] != "draft":
            raise Conflict(f"a {campaign['status']} campaign cannot be sent")
        later = send_at if send_at is not None and send_at > datetime.now(UTC) else None
        store_campaigns.set_campaign_send(conn, campaign_id, "scheduled" if later else "sending", send_at)
        audit.record(conn, principal, "email_campaign.send", "email_campaign", campaign_id,
                     {"send_at": later.isoformat() if later else None})
        if later:
            return {"campaign_id": campaign_id, "status": "scheduled", "send_at": later.isoformat()}
        queued = _queue_campaign(conn, principal.tenant_id, campaign_id)
    return {"campaign_id": campaign_id, "status": "sending", "queued": queued}


def _queue_campaign(conn: Connection, tenant_id: str, campaign_id: str) -> int:
    """Hand a campaign that is becoming 'sending' (in ``conn``'s open transaction) to the email queue as one
    fan-out record (the sender expands it into one record per message, FAN_OUT_CHUNK at a time), so sending
    10,000 messages never holds up the API request. Returns how many messages are waiting to be sent.

    The record is queued before the transaction commits: if the queue is unreachable nothing changes (the
    campaign stays a draft, or scheduled) and the send can simply be tried again. The fan-out waits for this
    commit before it reads the campaign, and drops the record if the transaction rolled back."""
    waiting = store_messages.queued_count(conn, campaign_id)
    if not waiting:  # every recipient is suppressed: nothing to send
        store_campaigns.set_campaign_status(conn, campaign_id, "sent")
        return 0
    try:
        queue_record({"tenant_id": tenant_id, "campaign_id": campaign_id, "after": None})
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailable("the sending queue cannot be reached; nothing was sent, try again") from exc
    return waiting


def fan_out(tenant_id: str, campaign_id: str, after: str | None) -> int:
    """Queue one record per still-queued message of the campaign (ids after ``after``, one chunk), and a
    record for the next chunk. A retried chunk queues some messages twice; the sender sends each once."""
    with db.tenant_transaction(tenant_id) as conn:
        # FOR SHARE waits for the transaction that queued this record (see _queue_campaign) to end.
        if store_messages.campaign_status_for_share(conn, campaign_id) != "sending":
            return 0
        ids = store_messages.queued_message_ids(conn, campaign_id, after, FAN_OUT_CHUNK)
    queue_records([{"tenant_id": tenant_id, "message_ids": ids[i:i + IDS_PER_RECORD]}
                   for i in range(0, len(ids), IDS_PER_RECORD)])
    if len(ids) == FAN_OUT_CHUNK:
        queue_record({"tenant_id": tenant_id, "campaign_id": campaign_id, "after": ids[-1]})
    return len(ids)


def send_scheduled(tenant_id: str) -> int:
    """Queue the campaigns whose ``send_at`` has come (called by the 5-minute schedule). Each is moved to
    'sending' in its own transaction with its queue record, so a queue outage leaves it scheduled for the next run
    and two overlapping runs queue it once."""
    with db.tenant_transaction(tenant_id) as conn:
        due = store_messages.due_scheduled_campaign_ids(conn)
    queued = 0
    for campaign_id in due:
        with db.tenant_transaction(tenant_id) as conn:
            if store_messages.start_scheduled_campaign(conn, campaign_id):
                queued += _queue_campaign(conn, tenant_id, campaign_id)
    return queued
