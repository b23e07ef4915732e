"""When a campaign is done: it becomes 'sent' once none of its messages is still queued (at once when every
recipient was suppressed). The sender marks it after each message; the 5-minute schedule's sweep catches
the rest."""
from __future__ import annotations

from typing import Any

from funnel import db
from funnel.db import Connection
from funnel.email import store_messages


def complete_if_nothing_queued(conn: Connection, campaign_id: Any) -> int:
    """Mark the campaign 'sent' if none of its messages waits (1), else leave it (0). Only a campaign with nothing
    queued is locked, so the senders of a running campaign never contend on its row; a row another transaction
    holds is skipped, never waited on (a cancel holds it while it locks the messages a sender holds). Two senders
    finishing the last two messages at once may each still see the other's as queued: ``complete_sent_campaigns``
    catches those."""
    return store_messages.complete_campaigns_with_nothing_queued(conn, campaign_id)


def complete_sent_campaigns(tenant_id: str) -> int:
    """The schedule's sweep: every sending campaign with no message left to send becomes 'sent'."""
    with db.tenant_transaction(tenant_id) as conn:
        return store_messages.complete_campaigns_with_nothing_queued(conn)
