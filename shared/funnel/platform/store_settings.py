"""A tenant's settings row (``system_settings``, one per tenant): the SQL over it, as small named functions.

Only what the platform's routes read and write is here: ``ai_settings``, the workspace's own model per step
(``{"step_models": {step: {"provider_id", "model_class", "model_name"}}}``; ``funnel.platform.llm`` reads
the same shape).
"""
from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection


def ai_settings(conn: Connection) -> dict[str, Any]:
    """The tenant's ``ai_settings`` ({} while it has no settings row; RLS leaves the tenant's row only)."""
    row = conn.execute("SELECT ai_settings FROM system_settings").fetchone()
    return dict((row or {}).get("ai_settings") or {})


def save_ai_settings(conn: Connection, ai_settings: dict[str, Any]) -> None:
    """Write the tenant's ``ai_settings`` (creating its settings row if needed)."""
    conn.execute("INSERT INTO system_settings (ai_settings) VALUES (%s) ON CONFLICT (tenant_id) "
                 "DO UPDATE SET ai_settings = EXCLUDED.ai_settings, updated_at = now()", (Jsonb(ai_settings),))
