"""The LLM layer's data access: the model registry (control DB: ``llm_providers``, ``llm_models``,
``step_llm_defaults``) and the tenant's versioned ``prompts``.

The rules (which model a step gets, which prompt version is valid, one active version per step) stay in
``funnel.platform.llm`` and ``funnel.platform.prompts``, which call these.
"""
from __future__ import annotations

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one

PROMPT_COLUMNS = "id, step, version, content, variables, is_active, created_by, created_at"


# ---------------------------------------------------------------- the model registry (control DB)

def active_models(conn: Connection) -> list[Row]:
    """Every active model of an active provider, with what calling it needs (endpoint, key name, prices)."""
    return conn.execute(
        "SELECT m.provider_id, m.model_name, m.model_class, p.api_base_url, p.api_key_name, p.is_offline, "
        "m.input_cost_per_mtok, m.output_cost_per_mtok FROM llm_models m JOIN llm_providers p "
        "ON p.id = m.provider_id WHERE m.is_active AND p.is_active ORDER BY m.id").fetchall()


def step_defaults(conn: Connection) -> list[Row]:
    """``step, provider_id, model_class``: the model class each step uses unless overridden (by step)."""
    return conn.execute("SELECT step, provider_id, model_class FROM step_llm_defaults ORDER BY step").fetchall()


# What the API lists and ``funnel llm`` shows and changes (``funnel.platform.llm_registry``).

def providers(conn: Connection) -> list[Row]:
    """Every provider, active or not, by id."""
    return conn.execute("SELECT id, display_name, api_base_url, is_offline, is_active FROM llm_providers "
                        "ORDER BY id").fetchall()


def models(conn: Connection) -> list[Row]:
    """Every model, active or not, by provider."""
    return conn.execute("SELECT id, provider_id, model_name, model_class, input_cost_per_mtok, "
                        "output_cost_per_mtok, is_active FROM llm_models ORDER BY provider_id, id").fetchall()


def step_defaults_with_models(conn: Connection) -> list[Row]:
    """``step, provider_id, model_class`` and ``model_name``, the active model of that class (None if none)."""
    return conn.execute("SELECT d.step, d.provider_id, d.model_class, m.model_name FROM step_llm_defaults d "
                        "LEFT JOIN llm_models m ON m.provider_id = d.provider_id "
                        "AND m.model_class = d.model_class AND m.is_active ORDER BY d.step").fetchall()


def set_step_default(conn: Connection, step: str, provider_id: str, model_class: str) -> None:
    conn.execute("INSERT INTO step_llm_defaults (step, provider_id, model_class) VALUES (%s, %s, %s) "
                 "ON CONFLICT (step) DO UPDATE SET provider_id = EXCLUDED.provider_id, "
                 "model_class = EXCLUDED.model_class", (step, provider_id, model_class))


# ---------------------------------------------------------------- prompts (tenant DB)

def lock_prompt_step(conn: Connection, step: str) -> None:
    """Serialise the saves of one step's prompts (until the transaction ends), so versions do not collide."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_setting('app.tenant_id', true) || %s))", (step,))


def next_prompt_version(conn: Connection, step: str) -> int:
    return int(fetch_one(conn.execute("SELECT coalesce(max(version), 0) + 1 AS v FROM prompts WHERE step = %s",
                                      (step,)))["v"])


def deactivate_prompts(conn: Connection, step: str) -> None:
    conn.execute("UPDATE prompts SET is_active = false WHERE step = %s AND is_active", (step,))


def insert_prompt(conn: Connection, step: str, version: int, content: str, variables: list[str], is_active: bool,
                  created_by: str) -> Row:
    return fetch_one(conn.execute(f"INSERT INTO prompts (step, version, content, variables, is_active, created_by) "
                                  f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {PROMPT_COLUMNS}",
                                  (step, version, content, Jsonb(variables), is_active, created_by)))


def prompt_step(conn: Connection, prompt_id: int) -> str | None:
    row = conn.execute("SELECT step FROM prompts WHERE id = %s", (prompt_id,)).fetchone()
    return row["step"] if row else None


def activate_prompt(conn: Connection, prompt_id: int) -> Row:
    return fetch_one(conn.execute(f"UPDATE prompts SET is_active = true WHERE id = %s RETURNING {PROMPT_COLUMNS}",
                                  (prompt_id,)))


def list_prompts(conn: Connection, step: str | None) -> list[Row]:
    """Newest version first; every step's (ordered by step) when ``step`` is None."""
    if step:
        return conn.execute(f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE step = %s ORDER BY version DESC",
                            (step,)).fetchall()
    return conn.execute(f"SELECT {PROMPT_COLUMNS} FROM prompts ORDER BY step, version DESC").fetchall()


def active_prompt(conn: Connection, step: str) -> Row | None:
    return conn.execute(f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE step = %s AND is_active", (step,)).fetchone()
