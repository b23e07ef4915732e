"""Runs, steps and artifacts: the record of every long job (one run per state machine execution).

Every area's pipeline uses these functions, so progress, retries, token usage
and artifacts look the same everywhere.
"""
from __future__ import annotations

import json
from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection
from funnel.platform import storage
from funnel.platform.errors import NotFound
from funnel.platform.pagination import Page, keyset_page

RUN_COLUMNS = ("id, kind, status, current_step, config, execution_arn, steps_total, steps_done, error_message, "
               "created_by, created_at, updated_at, started_at, finished_at")
STEP_COLUMNS = ("id, run_id, step, item_key, status, llm_model, token_usage, cost_usd, error_message, retry_count, "
                "started_at, completed_at")
ARTIFACT_COLUMNS = "id, run_id, step, file_type, file_path, digest, metadata, created_at"
TERMINAL = ("completed", "failed", "cancelled")


def create_run(conn: Connection, kind: str, config: dict, created_by: str | None, steps_total: int = 0) -> dict:
    return conn.execute(f"INSERT INTO runs (kind, config, created_by, steps_total) VALUES (%s, %s, %s, %s) "
                        f"RETURNING {RUN_COLUMNS}", (kind, Jsonb(config), created_by, steps_total)).fetchone()


def get_run(conn: Connection, run_id: str, for_update: bool = False) -> dict:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s{' FOR UPDATE' if for_update else ''}",
                       (run_id,)).fetchone()
    if row is None:
        raise NotFound("run not found")
    return row


def list_runs(conn: Connection, cursor: str | None, limit: int, kind: str | None = None,
              status: str | None = None) -> Page:
    return keyset_page(conn, table="runs", columns=RUN_COLUMNS, cursor=cursor, limit=limit,
                       filters={"kind": kind, "status": status})


def update_run(conn: Connection, run_id: str, **changes: Any) -> dict:
    """Set run columns; ``status`` moves timestamps (started_at once, finished_at on a terminal status)."""
    if "config" in changes:
        changes["config"] = Jsonb(changes["config"])
    assignments = [f"{column} = %s" for column in changes]
    status = changes.get("status")
    if status == "running":
        assignments.append("started_at = coalesce(started_at, now())")
    if status in TERMINAL:
        assignments.append("finished_at = now()")
    elif status is not None:
        assignments.append("finished_at = NULL")
    row = conn.execute(f"UPDATE runs SET {', '.join(assignments)}, updated_at = now() WHERE id = %s "
                       f"RETURNING {RUN_COLUMNS}", (*changes.values(), run_id)).fetchone()
    if row is None:
        raise NotFound("run not found")
    return row


def start_step(conn: Connection, run_id: str, step: str, item_key: str = "", llm_model: str | None = None) -> dict:
    """Record that a step (one item of it, for Map states) starts; a re-start counts as a retry."""
    conn.execute("UPDATE runs SET current_step = %s, updated_at = now() WHERE id = %s", (step, run_id))
    return conn.execute(
        f"INSERT INTO steps (run_id, step, item_key, status, llm_model) VALUES (%s, %s, %s, 'running', %s) "
        f"ON CONFLICT (run_id, step, item_key) DO UPDATE SET status = 'running', "
        f"retry_count = steps.retry_count + CASE WHEN steps.status IN ('failed', 'running') THEN 1 ELSE 0 END, "
        f"error_message = NULL, llm_model = coalesce(EXCLUDED.llm_model, steps.llm_model), started_at = now(), "
        f"completed_at = NULL RETURNING {STEP_COLUMNS}", (run_id, step, item_key, llm_model)).fetchone()


def complete_step(conn: Connection, run_id: str, step: str, item_key: str = "", *, token_usage: dict | None = None,
                  cost_usd: float = 0.0, llm_model: str | None = None, counts_toward_progress: bool = True) -> dict:
    previous = conn.execute("SELECT status FROM steps WHERE run_id = %s AND step = %s AND item_key = %s",
                            (run_id, step, item_key)).fetchone()
    row = conn.execute(
        f"INSERT INTO steps (run_id, step, item_key, status, token_usage, cost_usd, llm_model, completed_at) "
        f"VALUES (%s, %s, %s, 'completed', %s, %s, %s, now()) ON CONFLICT (run_id, step, item_key) DO UPDATE SET "
        f"status = 'completed', token_usage = EXCLUDED.token_usage, cost_usd = EXCLUDED.cost_usd, "
        f"llm_model = coalesce(EXCLUDED.llm_model, steps.llm_model), error_message = NULL, completed_at = now() "
        f"RETURNING {STEP_COLUMNS}",
        (run_id, step, item_key, Jsonb(token_usage) if token_usage else None, cost_usd, llm_model)).fetchone()
    if counts_toward_progress and (previous is None or previous["status"] != "completed"):
        conn.execute("UPDATE runs SET steps_done = steps_done + 1, updated_at = now() WHERE id = %s", (run_id,))
    return row


def fail_step(conn: Connection, run_id: str, step: str, item_key: str = "", error: str = "") -> dict:
    return conn.execute(
        f"INSERT INTO steps (run_id, step, item_key, status, error_message) VALUES (%s, %s, %s, 'failed', %s) "
        f"ON CONFLICT (run_id, step, item_key) DO UPDATE SET status = 'failed', error_message = EXCLUDED.error_message "
        f"RETURNING {STEP_COLUMNS}", (run_id, step, item_key, error[:4000])).fetchone()


def step_status(conn: Connection, run_id: str, step: str, item_key: str = "") -> str | None:
    row = conn.execute("SELECT status FROM steps WHERE run_id = %s AND step = %s AND item_key = %s",
                       (run_id, step, item_key)).fetchone()
    return row["status"] if row else None


def list_steps(conn: Connection, run_id: str) -> list[dict]:
    get_run(conn, run_id)
    return conn.execute(f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = %s ORDER BY started_at, id",
                        (run_id,)).fetchall()


def list_artifacts(conn: Connection, run_id: str) -> list[dict]:
    get_run(conn, run_id)
    return conn.execute(f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = %s ORDER BY id",
                        (run_id,)).fetchall()


def write_output(conn: Connection, tenant_id: str, run_id: str, step: str, output: Any, *, summary: str,
                 metrics: dict | None = None, item_key: str = "") -> dict:
    """Store a step's output in S3, record the artifact, and return the small reference passed on in state."""
    key = f"{storage.step_prefix(tenant_id, run_id, step, item_key)}/output.json"
    body = json.dumps(output, ensure_ascii=False, default=str).encode()
    digest = storage.put_bytes(key, body, "application/json")
    record_artifact(conn, run_id, step, "json", key, digest, {"bytes": len(body), "item_key": item_key})
    return {"output_path": key, "output_digest": digest, "summary": summary[:500], "metrics": metrics or {}}


def write_file(conn: Connection, tenant_id: str, run_id: str, step: str, name: str, body: bytes, content_type: str,
               *, item_key: str = "", file_type: str | None = None) -> dict:
    """Store a file under the step's ``artifacts/`` folder (screenshots, images) and record it."""
    key = f"{storage.step_prefix(tenant_id, run_id, step, item_key)}/artifacts/{name}"
    digest = storage.put_bytes(key, body, content_type)
    return record_artifact(conn, run_id, step, file_type or content_type.split("/")[-1], key, digest,
                           {"bytes": len(body), "content_type": content_type, "item_key": item_key})


def record_artifact(conn: Connection, run_id: str, step: str, file_type: str, path: str, digest: str,
                    metadata: dict) -> dict:
    return conn.execute(
        f"INSERT INTO artifacts (run_id, step, file_type, file_path, digest, metadata) VALUES (%s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT (run_id, file_path) DO UPDATE SET digest = EXCLUDED.digest, metadata = EXCLUDED.metadata "
        f"RETURNING {ARTIFACT_COLUMNS}", (run_id, step, file_type, path, digest, Jsonb(metadata))).fetchone()


def read_output(reference: dict) -> Any:
    """Load a step output from its reference, checking the digest."""
    return storage.get_json(reference["output_path"], reference.get("output_digest"))
