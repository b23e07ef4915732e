"""Data access for sending: the state of each ``email_messages`` row as it is queued, sent, refused and
reminded, the campaign's move to ``sending`` and its end (``sent``, ``partial``, ``failed``), the sweep of
campaigns whose messages no sender takes up any more, and the tenant's sending slots
(``email_send_slots``).

Small named functions, one statement each; the rules (what may be sent, when, how often) stay in
``sending``, ``delivery``, ``transport`` and ``reminders``. Rows are psycopg dict rows.
"""
from __future__ import annotations

from typing import Any

from funnel.db import Connection, Row

NO_MESSAGE_YET = "00000000-0000-0000-0000-000000000000"  # below every uuid: a fan-out's first chunk


# ---------------------------------------------------------------- sending limits

def lock_tenant_send_rate(conn: Connection) -> None:
    """The tenant's advisory lock over its sending slots, until this transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('email-rate:' || current_setting('app.tenant_id')))")


def slots_taken(conn: Connection) -> tuple[int, int]:
    """(slots taken in the last second, in the last 24 hours)."""
    row = conn.execute("SELECT count(*) FILTER (WHERE taken_at > now() - interval '1 second') AS second, "
                       "count(*) AS day FROM email_send_slots WHERE taken_at > now() - interval '1 day'").fetchone()
    assert row is not None  # an aggregate always returns a row
    return row["second"], row["day"]


def take_slot(conn: Connection) -> None:
    conn.execute("INSERT INTO email_send_slots DEFAULT VALUES")


def forget_old_slots(conn: Connection) -> None:
    """Delete the slots that left the 24-hour window."""
    conn.execute("DELETE FROM email_send_slots WHERE taken_at < now() - interval '1 day'")


# ---------------------------------------------------------------- campaigns being sent

def queued_count(conn: Connection, campaign_id: str) -> int:
    """How many of the campaign's messages wait to be sent."""
    row = conn.execute("SELECT count(*) AS n FROM email_messages WHERE campaign_id = %s AND status = 'queued'",
                       (campaign_id,)).fetchone()
    assert row is not None  # an aggregate always returns a row
    return int(row["n"])


def campaign_status_for_share(conn: Connection, campaign_id: str) -> str | None:
    """The campaign's status, read FOR SHARE: waits for a transaction that is changing it to end."""
    row = conn.execute("SELECT status FROM email_campaigns WHERE id = %s FOR SHARE", (campaign_id,)).fetchone()
    return row["status"] if row else None


def queued_message_ids(conn: Connection, campaign_id: str, after: str | None, limit: int) -> list[str]:
    """Up to ``limit`` ids of the campaign's queued messages, in id order, after ``after``."""
    return [str(r["id"]) for r in conn.execute(
        "SELECT id FROM email_messages WHERE campaign_id = %s AND status = 'queued' AND id > %s::uuid "
        "ORDER BY id LIMIT %s", (campaign_id, after or NO_MESSAGE_YET, limit))]


def due_scheduled_campaign_ids(conn: Connection) -> list[str]:
    """The scheduled campaigns whose ``send_at`` has come, earliest first."""
    return [str(r["id"]) for r in conn.execute(
        "SELECT id FROM email_campaigns WHERE status = 'scheduled' AND send_at <= now() ORDER BY send_at")]


def start_scheduled_campaign(conn: Connection, campaign_id: str) -> bool:
    """Move a still scheduled campaign to 'sending'; False if it no longer is scheduled."""
    return conn.execute("UPDATE email_campaigns SET status = 'sending', updated_at = now() "
                        "WHERE id = %s AND status = 'scheduled' RETURNING id", (campaign_id,)).fetchone() is not None


# As the stats count them: a bounce or complaint (even an address the SMTP server refused at RCPT) is the answer
# to a mail that was sent; 'failed' is a message that could not be sent (refused, unwritable, lost in the queue).
_SENT = "m.status IN ('sent', 'bounced', 'complained')"
_FAILED = "m.status = 'failed'"


def lock_finished_campaigns(conn: Connection, campaign_id: Any = None) -> list[Row]:
    """Sending campaigns (one, or all when ``campaign_id`` is None) none of whose messages is still queued, locked
    for this transaction: ``id, tenant_id, user_id, name`` and how many of their messages were ``sent`` and how
    many ``failed`` for good. Only a campaign with nothing queued is locked, and a row another transaction holds
    is skipped (SKIP LOCKED), never waited on."""
    # The locking subquery is never flattened into the outer one: the messages are counted only for a campaign
    # found finished and locked, not after every message of a running one.
    return conn.execute(
        f"SELECT c.id, c.tenant_id, c.user_id, c.name, n.sent, n.failed FROM (SELECT c.id, c.tenant_id, c.user_id, "
        f"c.name FROM email_campaigns c WHERE c.status = 'sending' AND (%s::uuid IS NULL OR c.id = %s::uuid) "
        f"AND NOT EXISTS (SELECT 1 FROM email_messages q WHERE q.campaign_id = c.id AND q.status = 'queued') "
        f"FOR NO KEY UPDATE OF c SKIP LOCKED) c, LATERAL (SELECT count(*) FILTER (WHERE {_SENT}) AS sent, "
        f"count(*) FILTER (WHERE {_FAILED}) AS failed FROM email_messages m WHERE m.campaign_id = c.id) n",
        (campaign_id, campaign_id)).fetchall()


def failure_reasons(conn: Connection, campaign_id: Any, limit: int) -> list[Row]:
    """The ``limit`` most frequent reasons (``error, n``) among the campaign's messages that failed for good."""
    return conn.execute(
        f"SELECT m.error, count(*) AS n FROM email_messages m WHERE m.campaign_id = %s AND {_FAILED} "
        f"GROUP BY m.error ORDER BY n DESC, m.error LIMIT %s", (campaign_id, limit)).fetchall()


def end_campaign(conn: Connection, campaign_id: Any, status: str, error: str | None) -> None:
    """The campaign ends as ``status`` ('sent', 'partial' or 'failed'); ``error`` says what failed."""
    conn.execute("UPDATE email_campaigns SET status = %s, error = %s, updated_at = now() WHERE id = %s",
                 (status, error, campaign_id))


def fail_messages_of_stalled_campaigns(conn: Connection, idle_seconds: int, reason: str) -> list[str]:
    """Fail (with ``reason``) the queued messages of every sending campaign that started sending more than
    ``idle_seconds`` ago and none of whose messages a sender took up in the last ``idle_seconds``; returns those
    campaigns' ids. A message a sender holds right now is waited for, and left alone once it is no longer queued."""
    return [str(r["campaign_id"]) for r in conn.execute(
        "WITH stalled AS (SELECT c.id FROM email_campaigns c WHERE c.status = 'sending' "
        "AND c.updated_at < now() - make_interval(secs => %s) AND NOT EXISTS (SELECT 1 FROM email_messages m "
        "WHERE m.campaign_id = c.id AND m.attempted_at >= now() - make_interval(secs => %s))), "
        "failed AS (UPDATE email_messages m SET status = 'failed', error = %s, next_reminder_at = NULL "
        "FROM stalled s WHERE m.campaign_id = s.id AND m.status = 'queued' RETURNING m.campaign_id) "
        "SELECT DISTINCT campaign_id FROM failed", (idle_seconds, idle_seconds, reason))]


# ---------------------------------------------------------------- one message

def message(conn: Connection, message_id: str) -> Row | None:
    """The whole ``email_messages`` row."""
    return conn.execute("SELECT * FROM email_messages WHERE id = %s", (message_id,)).fetchone()


def mark_attempted(conn: Connection, message_id: str) -> None:
    """A sender takes a still queued message up now: the stalled-campaign sweep's sign of progress."""
    conn.execute("UPDATE email_messages SET attempted_at = now() WHERE id = %s AND status = 'queued'", (message_id,))


def lock_message(conn: Connection, message_id: str) -> Row | None:
    """The whole row, locked for this transaction; None if unknown or another transaction holds it."""
    return conn.execute("SELECT * FROM email_messages WHERE id = %s FOR UPDATE SKIP LOCKED",
                        (message_id,)).fetchone()


def mark_suppressed(conn: Connection, message_id: str, reason: str) -> None:
    """A still queued message is not sent: the address is on the do-not-contact list (``reason``)."""
    conn.execute("UPDATE email_messages SET status = 'suppressed', error = %s WHERE id = %s AND status = 'queued'",
                 (reason, message_id))


def mark_sent(conn: Connection, message_id: str, provider_message_id: str, tracking_token: str,
              first_reminder_days: float | None) -> None:
    """The first mail went out; the first reminder falls due ``first_reminder_days`` later (None: never)."""
    conn.execute("UPDATE email_messages SET status = 'sent', sent_at = now(), last_sent_at = now(), "
                 "provider_message_id = %s, tracking_token = %s, "
                 "next_reminder_at = now() + make_interval(secs => %s::float8 * 86400) WHERE id = %s",
                 (provider_message_id, tracking_token, first_reminder_days, message_id))


def set_final_status(conn: Connection, message_id: Any, status: str, error: str | None = None) -> None:
    """The message ends as ``status`` and gets no reminder; ``error`` (if given) says why."""
    conn.execute("UPDATE email_messages SET status = %s, error = coalesce(%s, error), next_reminder_at = NULL "
                 "WHERE id = %s", (status, error, message_id))


# ---------------------------------------------------------------- reminders

def due_reminders(conn: Connection, limit: int) -> list[Row]:
    """Sent messages of campaigns not cancelled whose ``next_reminder_at`` has come, earliest first, locked
    (SKIP LOCKED): ``id, email, reminder_sent, reminder_strategy`` (the campaign's)."""
    return conn.execute(
        "SELECT m.id, m.email, m.reminder_sent, c.reminder_strategy FROM email_messages m "
        "JOIN email_campaigns c ON c.id = m.campaign_id "
        "WHERE m.next_reminder_at <= now() AND m.status = 'sent' AND c.status <> 'cancelled' "
        "ORDER BY m.next_reminder_at LIMIT %s FOR UPDATE OF m SKIP LOCKED", (limit,)).fetchall()


def lease_reminder(conn: Connection, message_id: Any, seconds: int) -> None:
    """A queued reminder moves ``next_reminder_at`` on by ``seconds``: if its queue message is lost, it is due
    again then."""
    conn.execute("UPDATE email_messages SET next_reminder_at = now() + make_interval(secs => %s) WHERE id = %s",
                 (seconds, message_id))


def mark_reminder_sent(conn: Connection, message_id: Any, reminder_round: int, next_days: float | None) -> None:
    """Round ``reminder_round`` went out; the next is due ``next_days`` later (None: no more)."""
    conn.execute("UPDATE email_messages SET reminder_sent = %s, last_sent_at = now(), next_reminder_at = "
                 "now() + make_interval(secs => %s::float8 * 86400) WHERE id = %s",
                 (reminder_round, next_days, message_id))


def stop_reminders(conn: Connection, message_id: Any) -> None:
    conn.execute("UPDATE email_messages SET next_reminder_at = NULL WHERE id = %s", (message_id,))
