"""A tenant's settings row (``system_settings``, one per tenant): the SQL over it, as small named functions.

``ai_settings`` holds the workspace's own model per step (``{"step_models": {step: {"provider_id",
"model_class", "model_name"}}}``; ``funnel.platform.llm`` reads the same shape). The whole row is what
``GET/PATCH /v1/settings`` shows and changes (``funnel.platform.workspace_settings``): ``base_url``,
``send_window`` (``{"days", "start", "end", "timezone"}``), ``shortlink_domain`` (community's shortlinks read it),
``smtp_settings`` (``{"host", "port", "username", "tls", "password_encrypted"}``).
"""
from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one

SETTINGS_COLUMNS = "base_url, send_window, shortlink_domain, ai_settings, smtp_settings, updated_at"


def ai_settings(conn: Connection) -> dict[str, Any]:
    """The tenant's ``ai_settings`` ({} while it has no settings row; RLS leaves the tenant's row only)."""
    row = conn.execute("SELECT ai_settings FROM system_settings").fetchone()
    return dict((row or {}).get("ai_settings") or {})


def save_ai_settings(conn: Connection, ai_settings: dict[str, Any]) -> None:
    """Write the tenant's ``ai_settings`` (creating its settings row if needed)."""
    conn.execute("INSERT INTO system_settings (ai_settings) VALUES (%s) ON CONFLICT (tenant_id) "
                 "DO UPDATE SET ai_settings = EXCLUDED.ai_settings, updated_at = now()", (Jsonb(ai_settings),))


def settings_row(conn: Connection, *, for_update: bool = False) -> Row | None:
    """The tenant's settings row (None while it has none; RLS leaves the tenant's row only)."""
    return conn.execute(f"SELECT {SETTINGS_COLUMNS} FROM system_settings{' FOR UPDATE' if for_update else ''}"
                        ).fetchone()


def save_settings(conn: Connection, *, base_url: str | None, send_window: dict[str, Any] | None,
                  shortlink_domain: str | None, ai_settings: dict[str, Any],
                  smtp_settings: dict[str, Any] | None) -> Row:
    """Write every column of the tenant's settings row (creating it if needed)."""
    return fetch_one(conn.execute(
        f"INSERT INTO system_settings (base_url, send_window, shortlink_domain, ai_settings, smtp_settings) "
        f"VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id) DO UPDATE SET base_url = EXCLUDED.base_url, "
        f"send_window = EXCLUDED.send_window, shortlink_domain = EXCLUDED.shortlink_domain, "
        f"ai_settings = EXCLUDED.ai_settings, smtp_settings = EXCLUDED.smtp_settings, updated_at = now() "
        f"RETURNING {SETTINGS_COLUMNS}",
        (base_url, Jsonb(send_window) if send_window is not None else None, shortlink_domain, Jsonb(ai_settings),
         Jsonb(smtp_settings) if smtp_settings is not None else None)))


def shortlink_host_of_another_tenant(control: Connection, host: str, tenant_id: str) -> bool:
    """Control DB: whether another tenant already holds shortlinks on ``host`` (``shortlink_routes``)."""
    return control.execute("SELECT 1 FROM shortlink_routes WHERE host = %s AND tenant_id <> %s LIMIT 1",
                           (host, tenant_id)).fetchone() is not None
