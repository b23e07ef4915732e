"""Reminders: a campaign's ``reminder_strategy`` (rules ``not_opened`` / ``opened_not_clicked`` after N days,
``max_reminders``, ``subject_prefix``) decides who gets one and when. The 5-minute schedule queues the due ones
(``send_due_reminders``); the sender sends round n of a message once (``deliver_reminder``). Only a person's
events count (machine opens and clicks do not); an unsubscribed, bounced, complained or suppressed recipient
gets none."""
from __future__ import annotations

from typing import Any

from funnel import db
from funnel.billing import limits
from funnel.db import Connection, Row
from funnel.email import mime, sending, store_events, store_messages, tokens, transport
from funnel.observability import count, logger
from funnel.platform import suppression
from funnel.settings import get_settings

WHEN = ("not_opened", "opened_not_clicked")
DEFAULT_AFTER_DAYS = 3
DEFAULT_SUBJECT_PREFIX = "【再送】"
REMINDER_LEASE_SECONDS = 3600  # a queued reminder whose queue message is lost is due again an hour later


def rules(strategy: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [r for r in (strategy or {}).get("rules", []) if r.get("when") in WHEN]


def max_reminders(strategy: dict[str, Any] | None) -> int:
    return int((strategy or {}).get("max_reminders", 1))


def next_reminder_days(strategy: dict[str, Any] | None, reminders_sent: int) -> float | None:
    """Days until the next reminder is due, after the first mail (``reminders_sent`` 0) or a reminder: the
    earliest rule's; None when the strategy has no rule or its reminders are used up."""
    found = rules(strategy)
    if not found or reminders_sent >= max_reminders(strategy):
        return None
    return min(float(r.get("after_days", DEFAULT_AFTER_DAYS)) for r in found)


def first_reminder_days(strategy: dict[str, Any] | None) -> float | None:
    return next_reminder_days(strategy, 0)


def state_of(event_types: set[str]) -> tuple[str, bool]:
    """("not_opened" | "opened_not_clicked" | "clicked", left) from a recipient's human events; ``left``: they
    unsubscribed, or their address bounced or complained."""
    state = "clicked" if "click" in event_types else "opened_not_clicked" if "open" in event_types else "not_opened"
    return state, bool(event_types & {"unsubscribe", "bounce", "complaint"})


def recipient_state(conn: Connection, message_id: Any) -> tuple[str, bool]:
    """``state_of`` the message's human (non-machine) events."""
    return state_of(store_events.human_event_types(conn, message_id))


def reminder_rule(strategy: dict[str, Any] | None, state: str, reminders_sent: int) -> dict[str, Any] | None:
    """The rule that makes a reminder due for a recipient in ``state`` who has had ``reminders_sent``, or None."""
    if reminders_sent >= max_reminders(strategy):
        return None
    return next((r for r in rules(strategy) if r["when"] == state), None)


def _still_wanted(conn: Connection, message: Row, strategy: dict[str, Any] | None) -> bool:
    """A rule still applies to the recipient, who has not left and is not on the do-not-contact list."""
    state, left = recipient_state(conn, message["id"])
    return (reminder_rule(strategy, state, message["reminder_sent"]) is not None and not left
            and not suppression.is_suppressed(conn, email=message["email"]))


def send_due_reminders(tenant_id: str, limit: int = 1000) -> int:
    """Queue the reminders that are due. Each message's strategy decides whether its recipient still
    qualifies (not opened / opened but not clicked); unsubscribed, bounced, complained or suppressed recipients
    never get one. A queued reminder is leased (next_reminder_at moves an hour on) so a lost queue message is
    picked up again, and the sender sends each round at most once (``deliver(..., reminder_round)``). While the
    subscription refuses sending (canceled, unpaid, past due beyond its grace period) nothing is queued: the
    reminders stay due and go out once it is paid."""
    refusal = limits.subscription_allows_use(tenant_id)
    if refusal is not None:
        logger.info("reminders held", extra={"reason": refusal})
        return 0
    due_rounds: list[tuple[str, int]] = []
    with db.tenant_transaction(tenant_id) as conn:
        for message in store_messages.due_reminders(conn, limit):
            if not _still_wanted(conn, message, message["reminder_strategy"]):
                store_messages.stop_reminders(conn, message["id"])
                continue
            store_messages.lease_reminder(conn, message["id"], REMINDER_LEASE_SECONDS)
            due_rounds.append((str(message["id"]), message["reminder_sent"] + 1))
        # Queued before the commit: if the commit fails the sender still checks the round, so nothing doubles.
        sending.queue_records([{"tenant_id": tenant_id, "message_id": m, "reminder_round": n} for m, n in due_rounds])
    return len(due_rounds)


def deliver_reminder(conn: Connection, tenant_id: str, campaign: Row, message: Row, reminder_round: int) -> str:
    """Send round ``reminder_round`` of ``message`` (locked in ``conn``) if it is still due: the previous round
    went out, the campaign is not cancelled, and a rule still applies to the recipient."""
    if message["reminder_sent"] >= reminder_round:
        return "reminder already sent"
    if (message["status"] != "sent" or campaign["status"] == "cancelled"
            or message["reminder_sent"] != reminder_round - 1):
        store_messages.stop_reminders(conn, message["id"])
        return "reminder not due"
    strategy = campaign["reminder_strategy"] or {}
    if not _still_wanted(conn, message, strategy):
        store_messages.stop_reminders(conn, message["id"])
        return "reminder not due"
    reminder = {**campaign, "subject": f"{strategy.get('subject_prefix', DEFAULT_SUBJECT_PREFIX)}{campaign['subject']}"}
    mail = mime.build(reminder, message, tenant_id, tokens.tracking_key(), get_settings().public_base_url,
                      reminder_round)
    try:
        transport.transmit(conn, tenant_id, campaign, message, mail)
    except transport.SendRefused as refusal:
        transport.record_refusal(conn, message, refusal, reminder_round)
        return "reminder refused"
    count("EmailRemindersSent", tenant_id=tenant_id)
    store_messages.mark_reminder_sent(conn, message["id"], reminder_round,
                                      next_reminder_days(strategy, reminder_round))
    return "reminder sent"
