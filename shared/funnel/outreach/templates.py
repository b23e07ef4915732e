"""Message templates with ``{{variables}}``; an unknown variable is an error when saving."""
from __future__ import annotations

from psycopg import Connection
from psycopg.types.json import Jsonb

from funnel.platform import audit
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal
from funnel.platform.prompts import PLACEHOLDER, placeholders

VARIABLES = ("company_name", "contact_person", "industry", "url", "sender_company", "sender_name", "sender_email",
             "sender_phone")
TEMPLATE_COLUMNS = "id, user_id, type, title, body, metadata, is_active, created_at"


def check_variables(*texts: str) -> None:
    unknown = set().union(*(placeholders(t) for t in texts if t)) - set(VARIABLES)
    if unknown:
        raise ValidationFailed(f"unknown variables {sorted(unknown)}; available: {list(VARIABLES)}")


def save_template(conn: Connection, principal: Principal, *, title: str, body: str, subject: str | None,
                  template_type: str, ai_mode: bool) -> dict:
    check_variables(body, subject or "")
    row = conn.execute(f"INSERT INTO templates (user_id, type, title, body, metadata) VALUES (%s, %s, %s, %s, %s) "
                       f"RETURNING {TEMPLATE_COLUMNS}",
                       (principal.user_id, template_type, title, body,
                        Jsonb({"subject": subject, "ai_mode": ai_mode}))).fetchone()
    audit.record(conn, principal, "template.create", "template", row["id"], {"title": title})
    return row


def get_template(conn: Connection, template_id: str) -> dict:
    row = conn.execute(f"SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = %s", (template_id,)).fetchone()
    if row is None:
        raise NotFound("template not found")
    return row


def render(text: str, values: dict) -> str:
    """Substitute known variables; a value that is missing renders empty (a contact without a person)."""
    return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1)) or ""), text or "")
