"""The runs' data access: every SQL statement over ``runs``, ``steps`` and ``artifacts``, as small named functions.

The rules (which timestamps a status moves, when a completed step counts toward progress, NotFound) stay in
``funnel.platform.runs``, which calls these. A step's retry count is kept by the upsert itself
(``upsert_running_step``): a re-start of a failed or still running step is one more retry, counted atomically
so two concurrent re-starts both count.
"""
from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

RUN_COLUMNS = ("id, kind, status, current_step, config, execution_arn, steps_total, steps_done, error_message, "
               "created_by, created_at, updated_at, started_at, finished_at")
STEP_COLUMNS = ("id, run_id, step, item_key, status, llm_model, token_usage, cost_usd, error_message, retry_count, "
                "started_at, completed_at")
ARTIFACT_COLUMNS = "id, run_id, step, file_type, file_path, digest, metadata, created_at"


# ---------------------------------------------------------------- runs

def insert_run(conn: Connection, kind: str, config: dict[str, Any], created_by: str | None, steps_total: int) -> Row:
    return fetch_one(conn.execute(f"INSERT INTO runs (kind, config, created_by, steps_total) VALUES (%s, %s, %s, %s) "
                                  f"RETURNING {RUN_COLUMNS}", (kind, Jsonb(config), created_by, steps_total)))


def select_run(conn: Connection, run_id: str, for_update: bool = False) -> Row | None:
    return conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s{' FOR UPDATE' if for_update else ''}",
                        (run_id,)).fetchone()


def runs_page(conn: Connection, cursor: str | None, limit: int, kind: str | None, status: str | None) -> Page:
    return keyset_page(conn, table="runs", columns=RUN_COLUMNS, cursor=cursor, limit=limit,
                       filters={"kind": kind, "status": status})


def update_run(conn: Connection, run_id: str, changes: dict[str, Any], *, mark_started: bool,
               finished: bool | None) -> Row | None:
    """Set the ``changes`` columns (their names come from the code, never from a request); ``mark_started``
    sets ``started_at`` unless it is set, ``finished`` sets (True) or clears (False) ``finished_at``."""
    values = {column: Jsonb(value) if column == "config" else value for column, value in changes.items()}
    assignments = [f"{column} = %s" for column in values]
    if mark_started:
        assignments.append("started_at = coalesce(started_at, now())")
    if finished is not None:
        assignments.append("finished_at = now()" if finished else "finished_at = NULL")
    return conn.execute(f"UPDATE runs SET {', '.join([*assignments, 'updated_at = now()'])} WHERE id = %s "
                        f"RETURNING {RUN_COLUMNS}", (*values.values(), run_id)).fetchone()


def fail_runs_idle_for(conn: Connection, seconds: int, error: str) -> list[Row]:
    """Pending or running runs not updated for ``seconds`` become failed with ``error`` (finished now)."""
    return conn.execute(f"UPDATE runs SET status = 'failed', error_message = %s, finished_at = now(), "
                        f"updated_at = now() WHERE status IN ('pending', 'running') "
                        f"AND updated_at < now() - make_interval(secs => %s) RETURNING {RUN_COLUMNS}",
                        (error, seconds)).fetchall()


def set_current_step(conn: Connection, run_id: str, step: str) -> None:
    conn.execute("UPDATE runs SET current_step = %s, updated_at = now() WHERE id = %s", (step, run_id))


def count_step_done(conn: Connection, run_id: str) -> None:
    conn.execute("UPDATE runs SET steps_done = steps_done + 1, updated_at = now() WHERE id = %s", (run_id,))


# ---------------------------------------------------------------- steps (one row per run, step and item)

def select_step_status(conn: Connection, run_id: str, step: str, item_key: str) -> str | None:
    row = conn.execute("SELECT status FROM steps WHERE run_id = %s AND step = %s AND item_key = %s",
                       (run_id, step, item_key)).fetchone()
    return row["status"] if row else None


def upsert_running_step(conn: Connection, run_id: str, step: str, item_key: str, llm_model: str | None) -> Row:
    """The step ``running`` from now; a re-start of a failed or running one adds a retry."""
    return fetch_one(conn.execute(
        f"INSERT INTO steps (run_id, step, item_key, status, llm_model) VALUES (%s, %s, %s, 'running', %s) "
        f"ON CONFLICT (run_id, step, item_key) DO UPDATE SET status = 'running', "
        f"retry_count = steps.retry_count + CASE WHEN steps.status IN ('failed', 'running') THEN 1 ELSE 0 END, "
        f"error_message = NULL, llm_model = coalesce(EXCLUDED.llm_model, steps.llm_model), started_at = now(), "
        f"completed_at = NULL RETURNING {STEP_COLUMNS}", (run_id, step, item_key, llm_model)))


def upsert_completed_step(conn: Connection, run_id: str, step: str, item_key: str, token_usage: dict[str, Any] | None,
                          cost_usd: float, llm_model: str | None) -> Row:
    return fetch_one(conn.execute(
        f"INSERT INTO steps (run_id, step, item_key, status, token_usage, cost_usd, llm_model, completed_at) "
        f"VALUES (%s, %s, %s, 'completed', %s, %s, %s, now()) ON CONFLICT (run_id, step, item_key) DO UPDATE SET "
        f"status = 'completed', token_usage = EXCLUDED.token_usage, cost_usd = EXCLUDED.cost_usd, "
        f"llm_model = coalesce(EXCLUDED.llm_model, steps.llm_model), error_message = NULL, completed_at = now() "
        f"RETURNING {STEP_COLUMNS}",
        (run_id, step, item_key, Jsonb(token_usage) if token_usage else None, cost_usd, llm_model)))


def upsert_failed_step(conn: Connection, run_id: str, step: str, item_key: str, error: str) -> Row:
    return fetch_one(conn.execute(
        f"INSERT INTO steps (run_id, step, item_key, status, error_message) VALUES (%s, %s, %s, 'failed', %s) "
        f"ON CONFLICT (run_id, step, item_key) DO UPDATE SET status = 'failed', error_message = EXCLUDED.error_message "
        f"RETURNING {STEP_COLUMNS}", (run_id, step, item_key, error)))


def select_steps(conn: Connection, run_id: str) -> list[Row]:
    return conn.execute(f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = %s ORDER BY started_at, id",
                        (run_id,)).fetchall()


# ---------------------------------------------------------------- artifacts

def select_artifacts(conn: Connection, run_id: str) -> list[Row]:
    return conn.execute(f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = %s ORDER BY id",
                        (run_id,)).fetchall()


def upsert_artifact(conn: Connection, run_id: str, step: str, file_type: str, path: str, digest: str,
                    metadata: dict[str, Any]) -> Row:
    """One artifact per (run, path): writing the same path again replaces its digest and metadata."""
    return fetch_one(conn.execute(
        f"INSERT INTO artifacts (run_id, step, file_type, file_path, digest, metadata) VALUES (%s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT (run_id, file_path) DO UPDATE SET digest = EXCLUDED.digest, metadata = EXCLUDED.metadata "
        f"RETURNING {ARTIFACT_COLUMNS}", (run_id, step, file_type, path, digest, Jsonb(metadata))))
