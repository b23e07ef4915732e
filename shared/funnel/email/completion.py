"""When a campaign is done, and how it ends. Once none of its messages is still queued (at once when every
recipient was suppressed) a sending campaign ends ``sent`` (no message failed), ``partial`` (some sent, some
failed) or ``failed`` (none sent), with ``error`` saying how many failed and their most frequent reasons; the
creator of a campaign that did not end ``sent`` is notified. The sender checks after each message; the 5-minute
schedule's sweep catches the rest, and fails the messages of a campaign that no sender takes up any more (their
queue records were lost, or wait in the queue's DLQ), so no campaign stays ``sending`` for ever."""
from __future__ import annotations

from typing import Any

from funnel import db
from funnel.db import Connection, Row
from funnel.email import store_messages
from funnel.notifications.service import notify

# A sending campaign none of whose messages a sender has taken up for this long has stalled: what is still queued
# is lost (its queue record was dropped, or waits in the DLQ after its retries). A live campaign is taken up far
# more often: a failed attempt is retried after the queue's visibility timeout (6 minutes), a throttled one after
# at most SQS's longest delay (15 minutes), and each sender record's first message is taken up (and counted) even
# when the tenant's limit makes it wait. Progress is the campaign's, not each message's: in a large campaign a
# message waits its turn behind thousands of others while the campaign moves on.
STALLED_CAMPAIGN_SECONDS = 30 * 60
LOST_IN_THE_QUEUE = "no progress (lost in the queue)"
REASONS_NAMED = 3  # the most frequent failure reasons a campaign's error names
REASON_CHARS = 300  # each reason is cut to this length in the campaign's error


def complete_if_nothing_queued(conn: Connection, campaign_id: Any) -> int:
    """End the campaign if none of its messages waits (1), else leave it (0). Only a campaign with nothing
    queued is locked, so the senders of a running campaign never contend on its row; a row another transaction
    holds is skipped, never waited on (a cancel holds it while it locks the messages a sender holds). Two senders
    finishing the last two messages at once may each still see the other's as queued: ``complete_finished_campaigns``
    catches those."""
    return _end(conn, store_messages.lock_finished_campaigns(conn, campaign_id))


def complete_finished_campaigns(tenant_id: str) -> int:
    """The schedule's sweep: every sending campaign with no message left to send ends."""
    with db.tenant_transaction(tenant_id) as conn:
        return _end(conn, store_messages.lock_finished_campaigns(conn))


def fail_stalled_campaigns(tenant_id: str, idle_seconds: int = STALLED_CAMPAIGN_SECONDS) -> int:
    """The schedule's sweep of stalled campaigns (``STALLED_CAMPAIGN_SECONDS``): their queued messages fail with
    ``LOST_IN_THE_QUEUE`` and each campaign ends as the completion rule says. Returns how many campaigns."""
    with db.tenant_transaction(tenant_id) as conn:
        stalled = store_messages.fail_messages_of_stalled_campaigns(conn, idle_seconds, LOST_IN_THE_QUEUE)
        for campaign_id in stalled:
            complete_if_nothing_queued(conn, campaign_id)
    return len(stalled)


def outcome(sent: int, failed: int) -> str:
    """How a campaign with nothing left to send ends, from how many of its messages went out and how many failed
    for good (suppressed and cancelled messages were never to be sent: they count for neither)."""
    if not failed:
        return "sent"
    return "partial" if sent else "failed"


def describe_failures(sent: int, failed: int, reasons: list[tuple[str | None, int]]) -> str:
    """The campaign's ``error``: how many messages failed, then the most frequent reasons (``reasons``: (reason,
    messages), most frequent first) with how many each, and how many more failed for other reasons."""
    named = [_cut(reason or "no reason recorded") + (f" ({n} messages)" if n > 1 else "") for reason, n in reasons]
    others = failed - sum(n for _, n in reasons)
    if others > 0:
        named.append(f"{others} more for other reasons")
    head = f"no message was sent, {failed} failed" if not sent else f"{failed} of {sent + failed} messages failed"
    return f"{head}: {'; '.join(named)}"


def _cut(reason: str) -> str:
    return reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS - 1] + "…"


def _end(conn: Connection, campaigns: list[Row]) -> int:
    """End each campaign as ``outcome`` says, with its error, and tell the creator of one that did not end sent."""
    for campaign in campaigns:
        status = outcome(campaign["sent"], campaign["failed"])
        error = None
        if status != "sent":
            reasons = [(r["error"], int(r["n"])) for r in store_messages.failure_reasons(conn, campaign["id"],
                                                                                          REASONS_NAMED)]
            error = describe_failures(campaign["sent"], campaign["failed"], reasons)
        store_messages.end_campaign(conn, campaign["id"], status, error)
        if error and campaign["user_id"]:
            title = (f"Campaign \"{campaign['name']}\" failed: no message was sent" if status == "failed" else
                     f"Campaign \"{campaign['name']}\": {campaign['failed']} of "
                     f"{campaign['sent'] + campaign['failed']} messages failed")
            notify(str(campaign["tenant_id"]), recipient_user_ids=[str(campaign["user_id"])], category="email.campaign",
                   title=title, body=f"{error}. The campaign's messages with status failed say why each was not sent.",
                   priority="HIGH", related_entity_type="email_campaign", related_entity_id=str(campaign["id"]),
                   conn=conn)
    return len(campaigns)
