"""Data access for campaigns and their recipients: ``email_campaigns``, the ``email_messages`` rows a campaign
is created with, listed or cancelled with, the outreach contacts a campaign can take its recipients from, and
``smtp_profiles``.

Small named functions, one statement each; the rules (validation, who may, what a status allows) stay in
``campaigns``, ``sending`` and ``smtp``. Rows are psycopg dict rows, returned as they come: the routes'
response models validate exactly these shapes.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row
from funnel.platform.pagination import Page, keyset_page

CAMPAIGN_COLUMNS = ("id, user_id, task_id, name, subject, body, from_name, from_address, sender_identity, "
                    "reminder_strategy, attachment_urls, smtp_profile_id, status, error, send_at, created_at, "
                    "updated_at")
MESSAGE_COLUMNS = "id, email, name, company, status, reminder_sent, sent_at, error"
PROFILE_COLUMNS = "id, name, host, port, username, starttls, from_address, created_at"
_CONTACT_RECIPIENT = ("SELECT c.id::text AS contact_id, c.email::text AS email, c.default_contact_person AS name, "
                      "c.company_name AS company FROM contacts c ")


# ---------------------------------------------------------------- recipients from outreach

def contacts_by_id(conn: Connection, contact_ids: list[str]) -> list[Row]:
    """The tenant's contacts among ``contact_ids`` as recipients (``email`` may be null)."""
    return conn.execute(_CONTACT_RECIPIENT + "WHERE c.id = ANY(%s::uuid[])", (contact_ids,)).fetchall()


def task_exists(conn: Connection, task_id: str) -> bool:
    return conn.execute("SELECT 1 FROM tasks WHERE id = %s", (task_id,)).fetchone() is not None


def task_contacts_with_email(conn: Connection, task_id: str) -> list[Row]:
    """The contacts of a send task's targets that have an e-mail address, as recipients, in target order."""
    return conn.execute(_CONTACT_RECIPIENT + "JOIN task_targets t ON t.contact_id = c.id WHERE t.task_id = %s "
                        "AND c.email IS NOT NULL ORDER BY t.id", (task_id,)).fetchall()


# ---------------------------------------------------------------- campaigns

def insert_campaign(conn: Connection, *, user_id: str | None, task_id: str | None, name: str, subject: str,
                    body: str, from_name: str, from_address: str, sender_identity: str,
                    reminder_strategy: dict[str, Any] | None, smtp_profile_id: str | None) -> Row:
    row = conn.execute(
        f"INSERT INTO email_campaigns (user_id, task_id, name, subject, body, from_name, from_address, "
        f"sender_identity, reminder_strategy, smtp_profile_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        f"RETURNING {CAMPAIGN_COLUMNS}",
        (user_id, task_id, name, subject, body, from_name, from_address, sender_identity,
         Jsonb(reminder_strategy) if reminder_strategy else None, smtp_profile_id)).fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return row


def insert_messages(conn: Connection, campaign_id: Any, recipients: list[dict[str, Any]]) -> None:
    """One message per recipient (each ``{"email", "domain", "contact_id", "name", "company"}``, the address and
    domain normalised), in one statement for any number of them. An address or domain on the do-not-contact
    list is checked in the same query: its message is ``suppressed`` with the entry in ``error``, else
    ``queued``. An address the campaign already has is left as it is."""
    conn.execute(
        "INSERT INTO email_messages (campaign_id, contact_id, email, name, company, status, error) "
        "SELECT %s, r.contact_id, r.email, r.name, r.company, "
        "CASE WHEN s.reason IS NULL THEN 'queued' ELSE 'suppressed' END, "
        "CASE WHEN s.reason IS NOT NULL THEN s.kind || ' on the do-not-contact list (' || s.reason || ')' END "
        "FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[]) "
        "AS r(contact_id, email, domain, name, company) "
        "LEFT JOIN LATERAL (SELECT kind, reason FROM suppressions WHERE (kind = 'email' AND value = r.email) "
        "OR (kind = 'domain' AND value = r.domain) LIMIT 1) s ON true "
        "ON CONFLICT (campaign_id, email) DO NOTHING",
        (campaign_id, [r.get("contact_id") for r in recipients], [r["email"] for r in recipients],
         [r["domain"] for r in recipients], [r.get("name") for r in recipients],
         [r.get("company") for r in recipients]))


def campaign(conn: Connection, campaign_id: str, for_update: bool = False) -> Row | None:
    return conn.execute(f"SELECT {CAMPAIGN_COLUMNS} FROM email_campaigns WHERE id = %s"
                        f"{' FOR UPDATE' if for_update else ''}", (campaign_id,)).fetchone()


def campaigns_page(conn: Connection, cursor: str | None, limit: int, status: str | None) -> Page:
    return keyset_page(conn, table="email_campaigns", columns=CAMPAIGN_COLUMNS, cursor=cursor, limit=limit,
                       filters={"status": status})


def set_campaign_status(conn: Connection, campaign_id: str, status: str) -> None:
    conn.execute("UPDATE email_campaigns SET status = %s, updated_at = now() WHERE id = %s", (status, campaign_id))


def set_campaign_send(conn: Connection, campaign_id: str, status: str, send_at: datetime | None) -> None:
    """A draft becomes ``sending`` or ``scheduled`` (for ``send_at``)."""
    conn.execute("UPDATE email_campaigns SET status = %s, send_at = %s, updated_at = now() WHERE id = %s",
                 (status, send_at, campaign_id))


def append_attachment(conn: Connection, campaign_id: str, attachment: dict[str, str]) -> None:
    conn.execute("UPDATE email_campaigns SET attachment_urls = attachment_urls || %s, updated_at = now() WHERE id = %s",
                 (Jsonb([attachment]), campaign_id))


def attachments_of_message(conn: Connection, message_id: str) -> list[dict[str, str]]:
    """The attachments of the campaign ``message_id`` belongs to (none for an unknown message)."""
    row = conn.execute("SELECT c.attachment_urls FROM email_messages m JOIN email_campaigns c "
                       "ON c.id = m.campaign_id WHERE m.id = %s", (message_id,)).fetchone()
    return list(row["attachment_urls"] or []) if row else []


# ---------------------------------------------------------------- a campaign's messages

def messages_by_address(conn: Connection, campaign_id: str, status: str | None, after_email: str | None,
                        limit: int) -> list[Row]:
    """Up to ``limit`` messages of the campaign ordered by address (the unique (campaign_id, email) index),
    after ``after_email``, of one ``status`` if given."""
    clauses, params = ["campaign_id = %s"], [campaign_id]
    if status:
        clauses.append("status = %s")
        params.append(status)
    if after_email is not None:
        clauses.append("email > %s")
        params.append(after_email)
    return conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM email_messages WHERE {' AND '.join(clauses)} "
                        f"ORDER BY email LIMIT %s", (*params, limit)).fetchall()


def cancel_queued_messages(conn: Connection, campaign_id: str) -> int:
    """Cancel the messages not sent yet; returns how many."""
    return conn.execute("UPDATE email_messages SET status = 'cancelled' WHERE campaign_id = %s AND status = 'queued'",
                        (campaign_id,)).rowcount


def stop_campaign_reminders(conn: Connection, campaign_id: str) -> None:
    conn.execute("UPDATE email_messages SET next_reminder_at = NULL WHERE campaign_id = %s", (campaign_id,))


# ---------------------------------------------------------------- SMTP profiles

def insert_smtp_profile(conn: Connection, *, name: str, host: str, port: int, username: str | None,
                        password_encrypted: str | None, starttls: bool, from_address: str) -> Row:
    row = conn.execute(
        f"INSERT INTO smtp_profiles (name, host, port, username, password_encrypted, starttls, from_address) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {PROFILE_COLUMNS}",
        (name, host, port, username, password_encrypted, starttls, from_address)).fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return row


def smtp_profiles(conn: Connection) -> list[Row]:
    """Every profile (without its password), oldest first."""
    return conn.execute(f"SELECT {PROFILE_COLUMNS} FROM smtp_profiles ORDER BY created_at").fetchall()


def smtp_profile_with_password(conn: Connection, profile_id: str) -> Row | None:
    """The profile with ``password_encrypted``, to send through it."""
    return conn.execute(f"SELECT {PROFILE_COLUMNS}, password_encrypted FROM smtp_profiles WHERE id = %s",
                        (profile_id,)).fetchone()


def smtp_from_address(conn: Connection, profile_id: str) -> str | None:
    row = conn.execute("SELECT from_address FROM smtp_profiles WHERE id = %s", (profile_id,)).fetchone()
    return row["from_address"] if row else None
