"""Who must not be contacted: the suppression (do-not-contact) list, shared with document
e-mails, plus the sent history, the send window and the daily cap."""
from __future__ import annotations

from datetime import datetime
from datetime import time as clock
from zoneinfo import ZoneInfo

from psycopg import Connection

from funnel.outreach.normalize import domain_of, normalize_company, normalize_email, normalize_phone
from funnel.platform.errors import ValidationFailed

KINDS = ("domain", "email", "phone", "company_name", "corporate_number")
REASONS = ("unsubscribed", "hard_bounce", "complaint", "manual", "do_not_contact")
DEFAULT_RECONTACT_DAYS = 180


def normalized(kind: str, value: str) -> str:
    if kind == "domain":
        text = value.strip().lower()
        return domain_of(text if "://" in text else "https://" + text)
    if kind == "email":
        return normalize_email(value) or ""
    if kind == "phone":
        return normalize_phone(value) or ""
    if kind == "company_name":
        return normalize_company(value) or ""
    return "".join(ch for ch in value if ch.isdigit())


def suppress(conn: Connection, kind: str, value: str, reason: str, source: str | None = None) -> dict:
    if kind not in KINDS or reason not in REASONS:
        raise ValidationFailed(f"kind must be one of {KINDS} and reason one of {REASONS}")
    key = normalized(kind, value)
    if not key:
        raise ValidationFailed(f"an empty {kind} cannot be suppressed")
    return conn.execute(
        "INSERT INTO suppressions (kind, value, reason, source) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, kind, value) DO UPDATE SET reason = EXCLUDED.reason "
        "RETURNING id, kind, value, reason, source, created_at", (kind, key, reason, source)).fetchone()


def is_suppressed(conn: Connection, *, email: str | None = None, domain: str | None = None,
                  phone: str | None = None, company_name: str | None = None,
                  corporate_number: str | None = None) -> str | None:
    """The reason the contact is on the list, or None. An e-mail also matches its domain."""
    candidates = []
    for kind, value in (("email", email), ("domain", domain), ("phone", phone), ("company_name", company_name),
                        ("corporate_number", corporate_number)):
        if value:
            key = normalized(kind, value)
            if key:
                candidates.append((kind, key))
    if email and "@" in email:
        candidates.append(("domain", normalized("domain", email.split("@", 1)[1])))
    if not candidates:
        return None
    row = conn.execute("SELECT kind, reason FROM suppressions WHERE (kind, value) IN (SELECT * FROM unnest(%s::text[], "
                       "%s::text[])) LIMIT 1", ([k for k, _ in candidates], [v for _, v in candidates])).fetchone()
    return f"{row['kind']} on the do-not-contact list ({row['reason']})" if row else None


def recently_contacted(conn: Connection, domain: str, days: int) -> bool:
    return conn.execute("SELECT 1 FROM sent_history WHERE domain = %s AND sent_at > now() - make_interval(days => %s) "
                        "LIMIT 1", (domain, days)).fetchone() is not None


def record_sent(conn: Connection, domain: str, contact_id: str | None, task_id: str, channel: str = "form") -> None:
    conn.execute("INSERT INTO sent_history (domain, contact_id, task_id, channel) VALUES (%s, %s, %s, %s)",
                 (domain, contact_id, task_id, channel))


def outside_send_window(window: dict | None, now: datetime | None = None) -> str | None:
    """``{"days": [0..6 Mon-Sun], "start": "09:00", "end": "18:00", "timezone": "Asia/Tokyo"}``; None = always open."""
    if not window:
        return None
    zone = ZoneInfo(window.get("timezone", "Asia/Tokyo"))
    local = (now or datetime.now(zone)).astimezone(zone)
    days = window.get("days", [0, 1, 2, 3, 4])
    start = clock.fromisoformat(window.get("start", "09:00"))
    end = clock.fromisoformat(window.get("end", "18:00"))
    if local.weekday() not in days or not start <= local.time() < end:
        return f"outside the send window ({window.get('start', '09:00')}-{window.get('end', '18:00')} {zone.key})"
    return None


def submitted_today(conn: Connection, timezone: str = "Asia/Tokyo") -> int:
    return conn.execute("SELECT count(*) AS n FROM sent_history WHERE sent_at >= date_trunc('day', now() AT TIME ZONE %s) "
                        "AT TIME ZONE %s", (timezone, timezone)).fetchone()["n"]


# Entries an administrator may remove here; unsubscribes, bounces and complaints stay (e-mail compliance).
REMOVABLE_REASONS = ("manual", "do_not_contact")


def list_suppressions(conn: Connection, cursor: str | None, limit: int, kind: str | None = None):
    from funnel.platform.pagination import keyset_page

    return keyset_page(conn, table="suppressions", columns="id, kind, value, reason, source, created_at",
                       cursor=cursor, limit=limit, filters={"kind": kind})


def remove_suppression(conn: Connection, suppression_id: str) -> dict:
    from funnel.platform.errors import Conflict, NotFound

    row = conn.execute("SELECT id, kind, value, reason FROM suppressions WHERE id = %s", (suppression_id,)).fetchone()
    if row is None:
        raise NotFound("suppression not found")
    if row["reason"] not in REMOVABLE_REASONS:
        raise Conflict(f"a suppression for reason {row['reason']!r} cannot be removed (the recipient asked or "
                       f"the address bounced)")
    conn.execute("DELETE FROM suppressions WHERE id = %s", (suppression_id,))
    return row
