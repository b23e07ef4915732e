"""When a campaign is done: it becomes 'sent' once none of its messages is still queued (at once when every
recipient was suppressed). The sender marks it after each message; the 5-minute schedule's sweep catches
the rest. A campaign some of whose messages failed (refused for good: each message says why) is done as well, and
its creator is told how many failed and the main reason."""
from __future__ import annotations

from typing import Any

from funnel import db
from funnel.db import Connection, Row
from funnel.email import store_messages
from funnel.notifications.service import notify


def complete_if_nothing_queued(conn: Connection, campaign_id: Any) -> int:
    """Mark the campaign 'sent' if none of its messages waits (1), else leave it (0). Only a campaign with nothing
    queued is locked, so the senders of a running campaign never contend on its row; a row another transaction
    holds is skipped, never waited on (a cancel holds it while it locks the messages a sender holds). Two senders
    finishing the last two messages at once may each still see the other's as queued: ``complete_sent_campaigns``
    catches those."""
    return _completed(conn, store_messages.complete_campaigns_with_nothing_queued(conn, campaign_id))


def complete_sent_campaigns(tenant_id: str) -> int:
    """The schedule's sweep: every sending campaign with no message left to send becomes 'sent'."""
    with db.tenant_transaction(tenant_id) as conn:
        return _completed(conn, store_messages.complete_campaigns_with_nothing_queued(conn))


def _completed(conn: Connection, campaigns: list[Row]) -> int:
    """Tell the creator of each just completed campaign whose messages (some or all) failed."""
    for campaign in campaigns:
        failed, total, reason = store_messages.failed_messages(conn, campaign["id"])
        if failed and campaign["user_id"]:
            notify(str(campaign["tenant_id"]), recipient_user_ids=[str(campaign["user_id"])], category="email.campaign",
                   title=f"Campaign \"{campaign['name']}\": {failed} of {total} messages failed",
                   body=f"{reason or 'refused by the sender'}. The campaign's messages with status failed say why "
                        f"each was not sent.",
                   priority="HIGH", related_entity_type="email_campaign", related_entity_id=str(campaign["id"]),
                   conn=conn)
    return len(campaigns)
