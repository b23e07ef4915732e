"""Versioned prompts: each save is a new version; one active version per step.

Templates use ``{{variable}}`` placeholders; the declared variables must match
the placeholders exactly, so a typo is an error at save time, not at run time.
"""
from __future__ import annotations

import re

from psycopg.types.json import Jsonb

from funnel.db import Connection
from funnel.platform import audit
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal

PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
PROMPT_COLUMNS = "id, step, version, content, variables, is_active, created_by, created_at"


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(text: str, values: dict[str, object]) -> str:
    missing = placeholders(text) - values.keys()
    if missing:
        raise ValidationFailed(f"missing values for {sorted(missing)}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def create_prompt(conn: Connection, principal: Principal, step: str, content: str, variables: list[str],
                  activate: bool) -> dict:
    used = placeholders(content)
    declared = set(variables)
    if used - declared:
        raise ValidationFailed(f"undeclared variables in the prompt: {sorted(used - declared)}")
    if declared - used:
        raise ValidationFailed(f"declared variables not used in the prompt: {sorted(declared - used)}")
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_setting('app.tenant_id', true) || %s))", (step,))
    version = conn.execute("SELECT coalesce(max(version), 0) + 1 AS v FROM prompts WHERE step = %s",
                           (step,)).fetchone()["v"]
    if activate:
        conn.execute("UPDATE prompts SET is_active = false WHERE step = %s AND is_active", (step,))
    row = conn.execute(f"INSERT INTO prompts (step, version, content, variables, is_active, created_by) "
                       f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {PROMPT_COLUMNS}",
                       (step, version, content, Jsonb(sorted(declared)), activate, principal.actor)).fetchone()
    audit.record(conn, principal, "prompt.create", "prompt", row["id"], {"step": step, "version": version})
    return row


def activate_prompt(conn: Connection, principal: Principal, prompt_id: int) -> dict:
    row = conn.execute("SELECT step FROM prompts WHERE id = %s", (prompt_id,)).fetchone()
    if row is None:
        raise NotFound("prompt not found")
    conn.execute("UPDATE prompts SET is_active = false WHERE step = %s AND is_active", (row["step"],))
    row = conn.execute(f"UPDATE prompts SET is_active = true WHERE id = %s RETURNING {PROMPT_COLUMNS}",
                       (prompt_id,)).fetchone()
    audit.record(conn, principal, "prompt.activate", "prompt", prompt_id, {"step": row["step"]})
    return row


def list_prompts(conn: Connection, step: str | None) -> list[dict]:
    if step:
        return conn.execute(f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE step = %s ORDER BY version DESC",
                            (step,)).fetchall()
    return conn.execute(f"SELECT {PROMPT_COLUMNS} FROM prompts ORDER BY step, version DESC").fetchall()


def active_prompt(conn: Connection, step: str) -> dict | None:
    return conn.execute(f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE step = %s AND is_active", (step,)).fetchone()
