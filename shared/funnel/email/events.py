"""Tracking events (open, click, unsubscribe) as the tracking function records them.

Kept apart from ``campaigns`` so the tracking function's first request imports only the database layer:
its cold start counts. Machine traffic is recorded but flagged (``is_machine``, with the reason in
``detail``) and kept out of unique/total open and click stats.
"""
from __future__ import annotations

import ipaddress

from funnel.platform.traffic import request_reason

# What a recorded human event counts as (machine traffic counts as EmailMachineEventsRecorded).
EVENT_METRICS = {"open": "EmailOpensRecorded", "click": "EmailClicksRecorded",
                 "unsubscribe": "EmailUnsubscribesRecorded"}
# A click this soon after the mail went out is a link scanner, not a person.
MACHINE_CLICK_SECONDS = 10
# Apple Mail Privacy Protection prefetches every image through Apple's proxies, with a bare "Mozilla/5.0"
# user agent, from Apple's address space.
APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")


def machine_reason(event_type: str, user_agent: str | None, method: str, ip: str | None,
                   seconds_since_sent: float | None) -> str | None:
    """Why this request is a machine's, not a person's (None: a person, as far as we can tell)."""
    reason = request_reason(user_agent, method)  # the rules every tracked URL shares (funnel.platform.traffic)
    if reason:
        return reason
    agent = (user_agent or "").strip().lower()
    if event_type == "open":
        try:
            apple = ip is not None and ipaddress.ip_address(ip) in APPLE_NETWORK
        except ValueError:
            apple = False
        if agent == "mozilla/5.0" or apple:
            return "apple_mail_privacy_protection"
    if event_type == "click" and seconds_since_sent is not None and seconds_since_sent < MACHINE_CLICK_SECONDS:
        return "click_within_seconds_of_delivery"
    return None


def is_machine(event_type: str, user_agent: str | None, method: str, seconds_since_sent: float | None,
               ip: str | None = None) -> bool:
    return machine_reason(event_type, user_agent, method, ip, seconds_since_sent) is not None


def record_event(tenant_id: str, message_id: str, event_type: str, *, url: str | None, user_agent: str | None,
                 ip: str | None, method: str, dedup_key: str | None, reminder_round: int | None = None) -> bool:
    """Write one event (once per ``dedup_key``) for the mail of ``reminder_round`` (from the token; None: the
    round the recipient was last sent); an unsubscribe also puts the address on the shared do-not-contact
    list and stops reminders. Returns False for an unknown message or a duplicate."""
    # Imported here, not at the top: ``machine_reason`` is pure, and the tracking function loads the database
    # layer only on its first event.
    from funnel import db
    from funnel.email import store_events
    from funnel.observability import count

    with db.tenant_transaction(tenant_id) as conn:
        message = store_events.message_for_event(conn, message_id)
        if message is None:
            return False
        reason = machine_reason(event_type, user_agent, method, ip,
                                float(message["age"]) if message["age"] is not None else None)
        inserted = store_events.insert_tracking_event(
            conn, message_id, event_type, url=url, user_agent=(user_agent or "")[:500], ip=ip, machine=reason,
            dedup_key=dedup_key, reminder_round=message["reminder_sent"] if reminder_round is None else reminder_round)
        if not inserted:
            return False
        if event_type == "unsubscribe":
            from funnel.email import store_messages
            from funnel.platform import suppression  # lazy like db above: only an unsubscribe needs them

            suppression.suppress(conn, "email", message["email"], "unsubscribed", f"email_message:{message_id}")
            store_messages.stop_reminders(conn, message_id)
    if event_type == "click" and reason is None:  # a person clicked: the community's touch (after the commit)
        _send_click_touch(tenant_id, message, url, dedup_key,
                          message["reminder_sent"] if reminder_round is None else reminder_round)
    count("EmailMachineEventsRecorded" if reason else EVENT_METRICS.get(event_type, "EmailEventsRecorded"),
          tenant_id=tenant_id)
    return True


def _send_click_touch(tenant_id: str, message: dict, url: str | None, dedup_key: str | None,
                      reminder_round: int | None) -> None:
    """The click as a touch for the community area (an activity of the developer with this address): queued, so
    the redirect waits only for one SQS call, and never fails for it (funnel.community.touches.send)."""
    import uuid
    from datetime import UTC, datetime

    # the community's public contract, imported on the first human click only
    from funnel.community.touches import EmailClick, send

    try:
        touch = EmailClick(tenant_id=tenant_id, touch_id=dedup_key or f"click:{message['id']}:{uuid.uuid4()}",
                           occurred_at=datetime.now(UTC), email=str(message["email"]),
                           name=(message.get("name") or None) and str(message["name"])[:300],
                           company=(message.get("company") or None) and str(message["company"])[:300],
                           email_campaign_id=message["campaign_id"], email_message_id=message["id"],
                           url=url[:4000] if url else None, reminder_round=reminder_round)
    except ValueError:  # not a touch the contract can carry (pydantic's ValidationError): the click stays recorded
        from funnel.observability import logger

        logger.warning("e-mail click not sent as a touch", exc_info=True)
        return
    send(touch)

