"""The sender's step for one message: ``deliver`` sends a campaign message, or one reminder round of it, once,
however often its queue record is retried. A suppressed address is never sent to; the tenant's sending limit
is taken before the transaction that renders and sends, in the one that records that a sender took the message up
(what the stalled-campaign sweep of ``completion`` looks at). So is the message's e-mail of the plan's month
(``funnel.billing.limits``): never while SES answers, given back when the message is not sent after all, and a
message over the plan's limit is refused for good ('failed' with the 402's reason; a reminder stops)."""
from __future__ import annotations

from funnel import db
from funnel.billing import limits
from funnel.email import campaigns, completion, mime, reminders, store_messages, tokens, transport
from funnel.observability import count
from funnel.platform import suppression
from funnel.settings import get_settings


def deliver(tenant_id: str, message_id: str, reminder_round: int = 0) -> str:
    """Send one message, or reminder round ``reminder_round`` of it; returns what became of it. Idempotent: the row
    is locked and a message already sent (or a round already sent) is never sent again. Raises EmailThrottled when
    the tenant's sending limit (or SES) says not now."""
    with db.tenant_transaction(tenant_id) as conn:  # a short look first: nothing to send takes no slot
        message = store_messages.message(conn, message_id)
        if message is None:
            return "unknown message"
        if reminder_round and message["reminder_sent"] >= reminder_round:
            return "reminder already sent"
        if message["status"] != ("sent" if reminder_round else "queued"):
            return message["status"] if not reminder_round else "reminder not due"
        reason = suppression.is_suppressed(conn, email=message["email"])
        if reason and not reminder_round:
            store_messages.mark_suppressed(conn, message_id, reason)
            completion.complete_if_nothing_queued(conn, message["campaign_id"])
            return "suppressed"
        if not reminder_round:  # the stalled-campaign sweep's sign of progress, kept whatever this attempt becomes
            store_messages.mark_attempted(conn, message_id)
        not_now = transport.take_send_slot(conn)
        over_plan = limits.take(conn, tenant_id, "emails") if not_now is None else None
    if not_now is not None:  # raised once the attempt is committed: a message waiting for its slot is not lost
        raise not_now
    try:
        with db.tenant_transaction(tenant_id) as conn:
            outcome = _send_locked(conn, tenant_id, message_id, reminder_round, over_plan)
            if over_plan is None and outcome not in ("sent", "reminder sent"):
                limits.give_back(conn, "emails")
    except Exception:
        if over_plan is None:  # a retry takes its e-mail again
            with db.tenant_transaction(tenant_id) as conn:
                limits.give_back(conn, "emails")
        raise
    return outcome


def _send_locked(conn: db.Connection, tenant_id: str, message_id: str, reminder_round: int,
                 over_plan: limits.PlanLimitReached | None) -> str:
    """The sending transaction: the message locked, sent once (or refused over the plan's limit)."""
    message = store_messages.lock_message(conn, message_id)
    if message is None:
        raise RuntimeError(f"message {message_id} is being sent by another worker")
    campaign = campaigns.get_campaign(conn, str(message["campaign_id"]))
    due = message["reminder_sent"] == reminder_round - 1 if reminder_round else True
    if over_plan is not None and due and message["status"] == ("sent" if reminder_round else "queued"):
        status = transport.record_refusal(conn, message, transport.SendRefused(over_plan.detail), reminder_round)
        completion.complete_if_nothing_queued(conn, campaign["id"])
        return "reminder refused" if reminder_round else status
    if reminder_round:
        return reminders.deliver_reminder(conn, tenant_id, campaign, message, reminder_round)
    if message["status"] != "queued":
        return str(message["status"])
    reason = suppression.is_suppressed(conn, email=message["email"])
    if reason:
        store_messages.mark_suppressed(conn, message_id, reason)
        completion.complete_if_nothing_queued(conn, campaign["id"])
        return "suppressed"
    mail = mime.build(campaign, message, tenant_id, tokens.tracking_key(), get_settings().public_base_url)
    try:
        provider_id = transport.transmit(conn, tenant_id, campaign, message, mail)
    except transport.SendRefused as refusal:
        status = transport.record_refusal(conn, message, refusal, 0)
        completion.complete_if_nothing_queued(conn, campaign["id"])
        return status
    store_messages.mark_sent(conn, message_id, provider_id, mail["X-Funnel-Message"],
                             reminders.first_reminder_days(campaign["reminder_strategy"]))
    count("EmailsSent", tenant_id=tenant_id)  # it went out: counted even if this commit fails
    completion.complete_if_nothing_queued(conn, campaign["id"])
    return "sent"
