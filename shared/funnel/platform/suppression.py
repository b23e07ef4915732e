"""The suppression (do-not-contact) list: who must not be contacted, by form or by e-mail.

Outreach checks it before a form submission, e-mail before every message, and e-mail adds to it
(unsubscribes, hard bounces, complaints); both areas use this module, neither imports the other.
The ``suppressions`` table is in ``migrations/tenant/versions/outreach_0001_tables.py``.
"""
from __future__ import annotations

from funnel.db import Connection, Row
from funnel.platform import store_suppression
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.normalize import ascii_digits, domain_of, normalize_company, normalize_email, normalize_phone
from funnel.platform.pagination import Page

KINDS = ("domain", "email", "phone", "company_name", "corporate_number")
REASONS = ("unsubscribed", "hard_bounce", "complaint", "manual", "do_not_contact")
# Entries an administrator may remove here; unsubscribes, bounces and complaints stay (e-mail compliance).
REMOVABLE_REASONS = ("manual", "do_not_contact")


def normalized(kind: str, value: str) -> str:
    """The form a value is stored and matched in ("" when nothing of it is left)."""
    if kind == "domain":
        text = value.strip().lower()
        return domain_of(text if "://" in text else "https://" + text)
    if kind == "email":
        return normalize_email(value) or ""
    if kind == "phone":
        return normalize_phone(value) or ""
    if kind == "company_name":
        return normalize_company(value) or ""
    return ascii_digits(value)


def suppress(conn: Connection, kind: str, value: str, reason: str, source: str | None = None) -> Row:
    if kind not in KINDS or reason not in REASONS:
        raise ValidationFailed(f"kind must be one of {KINDS} and reason one of {REASONS}")
    key = normalized(kind, value)
    if not key:
        raise ValidationFailed(f"an empty {kind} cannot be suppressed")
    return store_suppression.upsert(conn, kind, key, reason, source)


def is_suppressed(conn: Connection, *, email: str | None = None, domain: str | None = None,
                  phone: str | None = None, company_name: str | None = None,
                  corporate_number: str | None = None) -> str | None:
    """The reason the contact is on the list, or None. An e-mail also matches its domain."""
    candidates: list[tuple[str, str]] = []
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
    row = store_suppression.first_match(conn, candidates)
    return f"{row['kind']} on the do-not-contact list ({row['reason']})" if row else None


def list_suppressions(conn: Connection, cursor: str | None, limit: int, kind: str | None = None) -> Page:
    return store_suppression.page(conn, cursor, limit, kind)


def remove_suppression(conn: Connection, suppression_id: str) -> Row:
    """Remove a manual entry; returns it (``id, kind, value, reason``)."""
    row = store_suppression.select(conn, suppression_id)
    if row is None:
        raise NotFound("suppression not found")
    if row["reason"] not in REMOVABLE_REASONS:
        raise Conflict(f"a suppression for reason {row['reason']!r} cannot be removed (the recipient asked or "
                       f"the address bounced)")
    store_suppression.delete(conn, suppression_id)
    return row
