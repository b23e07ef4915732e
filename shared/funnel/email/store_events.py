"""Data access for what happens to a mail after it went out: ``email_events`` (opens, clicks and unsubscribes
from the tracking function; deliveries, bounces and complaints from SES or a refusing SMTP server), what a
recipient has done, and the counts a campaign's stats are made of.

Small named functions, one statement each; the rules (what is a machine, when an address is suppressed, what
the stats mean) stay in ``events``, ``sns``, ``transport``, ``reminders`` and ``stats``. Imports only the
database layer: the tracking function loads it on its first event, and its cold start counts.
"""
from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row

# Opens and clicks flagged as a machine's are left out of the human figures; other events always count.
_HUMAN = "(NOT e.is_machine OR e.type NOT IN ('open', 'click'))"
_OF_CAMPAIGN = "FROM email_events e JOIN email_messages m ON m.id = e.email_message_id WHERE m.campaign_id = %s"


# ---------------------------------------------------------------- recording

def message_for_event(conn: Connection, message_id: str) -> Row | None:
    """``id, campaign_id, email, name, company, reminder_sent`` and ``age`` (seconds since the last mail to it went
    out, or null)."""
    return conn.execute("SELECT id, campaign_id, email, name, company, reminder_sent, extract(epoch FROM now() - "
                        "coalesce(last_sent_at, sent_at)) AS age FROM email_messages WHERE id = %s",
                        (message_id,)).fetchone()


def message_address(conn: Connection, message_id: str) -> str | None:
    row = conn.execute("SELECT email FROM email_messages WHERE id = %s", (message_id,)).fetchone()
    return row["email"] if row else None


def insert_tracking_event(conn: Connection, message_id: str, event_type: str, *, url: str | None,
                          user_agent: str, ip: str | None, machine: str | None, dedup_key: str | None,
                          reminder_round: int) -> bool:
    """Record an open, click or unsubscribe (``machine``: why it is a machine's, or None); False if
    ``dedup_key`` was recorded already."""
    return conn.execute(
        "INSERT INTO email_events (email_message_id, type, url, user_agent, ip, is_machine, detail, dedup_key, "
        "reminder_round) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, dedup_key) DO NOTHING RETURNING id",
        (message_id, event_type, url, user_agent, ip, machine is not None,
         Jsonb({"machine": machine}) if machine else None, dedup_key, reminder_round)).fetchone() is not None


def insert_provider_event(conn: Connection, message_id: Any, event_type: str, detail: dict[str, Any],
                          dedup_key: str) -> bool:
    """Record a delivery, bounce or complaint (SES's notification body, or an SMTP refusal, in ``detail``);
    False if ``dedup_key`` was recorded already."""
    return conn.execute(
        "INSERT INTO email_events (email_message_id, type, detail, dedup_key) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, dedup_key) DO NOTHING RETURNING id",
        (message_id, event_type, Jsonb(detail), dedup_key)).fetchone() is not None


def soft_bounce_count(conn: Connection, email: str) -> int:
    """The soft (not Permanent) bounces recorded for ``email`` over every campaign."""
    row = conn.execute(
        "SELECT count(*) AS n FROM email_events e JOIN email_messages m ON m.id = e.email_message_id "
        "WHERE m.email = %s AND e.type = 'bounce' AND e.detail->>'bounceType' <> 'Permanent'", (email,)).fetchone()
    assert row is not None  # an aggregate always returns a row
    return int(row["n"])


def human_event_types(conn: Connection, message_id: Any) -> set[str]:
    """The types of the message's events that are not flagged as a machine's."""
    return {r["type"] for r in conn.execute(
        "SELECT DISTINCT type FROM email_events WHERE email_message_id = %s AND NOT is_machine", (message_id,))}


# ---------------------------------------------------------------- a campaign's figures

def message_counts_by_status(conn: Connection, campaign_id: str) -> dict[str, int]:
    return {r["status"]: r["n"] for r in conn.execute(
        "SELECT status, count(*) AS n FROM email_messages WHERE campaign_id = %s GROUP BY status", (campaign_id,))}


def human_event_counts(conn: Connection, campaign_id: str) -> list[Row]:
    """Per event type: ``type, total, unique_messages``, machine opens and clicks left out."""
    return conn.execute("SELECT e.type, count(*) AS total, count(DISTINCT e.email_message_id) AS unique_messages "
                        f"{_OF_CAMPAIGN} AND {_HUMAN} GROUP BY e.type", (campaign_id,)).fetchall()


def machine_event_count(conn: Connection, campaign_id: str) -> int:
    row = conn.execute(f"SELECT count(*) AS n {_OF_CAMPAIGN} AND e.is_machine", (campaign_id,)).fetchone()
    assert row is not None  # an aggregate always returns a row
    return int(row["n"])


def human_clicks_per_link(conn: Connection, campaign_id: str) -> list[Row]:
    """``url, total, unique_messages`` per link, most clicked first."""
    return conn.execute(f"SELECT e.url, count(*) AS total, count(DISTINCT e.email_message_id) AS unique_messages "
                        f"{_OF_CAMPAIGN} AND e.type = 'click' AND NOT e.is_machine GROUP BY e.url "
                        "ORDER BY total DESC, e.url", (campaign_id,)).fetchall()


def human_event_counts_per_round(conn: Connection, campaign_id: str) -> list[Row]:
    """``reminder_round, type, total, unique_messages`` of opens, clicks and unsubscribes."""
    return conn.execute(
        "SELECT e.reminder_round, e.type, count(*) AS total, count(DISTINCT e.email_message_id) AS unique_messages "
        f"{_OF_CAMPAIGN} AND {_HUMAN} AND e.type IN ('open', 'click', 'unsubscribe') "
        "GROUP BY e.reminder_round, e.type", (campaign_id,)).fetchall()


def sent_per_round(conn: Connection, campaign_id: str) -> dict[int, int]:
    """Round (0: the first mail) -> how many messages it went out to."""
    return {r["round"]: r["n"] for r in conn.execute(
        "SELECT g AS round, count(*) AS n FROM email_messages m, generate_series(0, m.reminder_sent) g "
        "WHERE m.campaign_id = %s AND m.sent_at IS NOT NULL GROUP BY g", (campaign_id,))}
