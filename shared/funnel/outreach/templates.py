"""Message templates with ``{{variables}}``; an unknown variable is an error when saving."""
from __future__ import annotations

from funnel.db import Connection, Row
from funnel.outreach import store_templates as store
from funnel.platform import audit
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.platform.prompts import PLACEHOLDER, placeholders

VARIABLES = ("company_name", "contact_person", "industry", "url", "sender_company", "sender_name", "sender_email",
             "sender_phone")


def check_variables(*texts: str) -> None:
    unknown = set().union(*(placeholders(t) for t in texts if t)) - set(VARIABLES)
    if unknown:
        raise ValidationFailed(f"unknown variables {sorted(unknown)}; available: {list(VARIABLES)}")


def save_template(conn: Connection, principal: Principal, *, title: str, body: str, subject: str | None,
                  template_type: str, ai_mode: bool) -> Row:
    check_variables(body, subject or "")
    row = store.insert_template(conn, principal.user_id, template_type, title, body,
                                {"subject": subject, "ai_mode": ai_mode})
    audit.record(conn, principal, "template.create", "template", row["id"], {"title": title})
    return row


def get_template(conn: Connection, template_id: str) -> Row:
    row = store.get_template(conn, template_id)
    if row is None:
        raise NotFound("template not found")
    return row


def render(text: str, values: dict) -> str:
    """Substitute known variables; a value that is missing renders empty (a contact without a person)."""
    return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1)) or ""), text or "")


def list_templates(conn: Connection, cursor: str | None, limit: int, template_type: str | None = None) -> Page:
    return store.templates_page(conn, cursor, limit, template_type)


def update_template(conn: Connection, principal: Principal, template_id: str, changes: dict) -> Row:
    """Partial update; unknown variables are refused as when saving."""
    current = get_template(conn, template_id)
    metadata = dict(current["metadata"] or {})
    for key in ("subject", "ai_mode"):
        if key in changes:
            metadata[key] = changes[key]
    title, body = changes.get("title") or current["title"], changes.get("body") or current["body"]
    check_variables(body, metadata.get("subject") or "")
    is_active = changes["is_active"] if changes.get("is_active") is not None else current["is_active"]
    row = store.update_template(conn, template_id, title, body, metadata, is_active)
    if row is None:  # deleted since it was read
        raise NotFound("template not found")
    audit.record(conn, principal, "template.update", "template", template_id, {"fields": sorted(changes)})
    return row


def delete_template(conn: Connection, principal: Principal, template_id: str) -> None:
    if not store.delete_template(conn, template_id):
        raise NotFound("template not found")
    audit.record(conn, principal, "template.delete", "template", template_id)
