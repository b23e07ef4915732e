"""Runs, steps and artifacts: the record of every long job (one run per state machine execution).

Every area's pipeline uses these functions, so progress, retries, token usage
and artifacts look the same everywhere.
"""
from __future__ import annotations

import json
from typing import Any

from funnel.db import Connection, Row
from funnel.platform import storage, store_runs
from funnel.platform.errors import NotFound
from funnel.platform.pagination import Page

TERMINAL = ("completed", "failed", "cancelled")
# A step's error message is kept to this many characters (a stack trace can be long).
MAX_ERROR_LENGTH = 4000


def create_run(conn: Connection, kind: str, config: dict, created_by: str | None, steps_total: int = 0) -> Row:
    return store_runs.insert_run(conn, kind, config, created_by, steps_total)


def get_run(conn: Connection, run_id: str, for_update: bool = False) -> Row:
    row = store_runs.select_run(conn, run_id, for_update)
    if row is None:
        raise NotFound("run not found")
    return row


def list_runs(conn: Connection, cursor: str | None, limit: int, kind: str | None = None,
              status: str | None = None) -> Page:
    return store_runs.runs_page(conn, cursor, limit, kind, status)


def update_run(conn: Connection, run_id: str, **changes: Any) -> Row:
    """Set run columns; ``status`` moves timestamps (started_at once, finished_at on a terminal status, cleared
    on any other)."""
    status = changes.get("status")
    row = store_runs.update_run(conn, run_id, changes, mark_started=status == "running",
                                finished=None if status is None else status in TERMINAL)
    if row is None:
        raise NotFound("run not found")
    return row


# A run still pending or running with no progress (no step started or done, no status change) for this long is
# stuck: its execution died without reporting (a Lambda killed mid-step, an execution stopped by hand). A live
# run moves at least every few minutes; one waiting for a send window is 'paused', never swept.
STUCK_RUN_SECONDS = 6 * 3600


def fail_stuck_runs(conn: Connection, idle_seconds: int = STUCK_RUN_SECONDS) -> list[Row]:
    """The sweep: every pending or running run without progress for ``idle_seconds`` ends ``failed`` with the
    reason in ``error_message``. Returns those runs (the caller notifies their ``created_by``)."""
    return store_runs.fail_runs_idle_for(
        conn, idle_seconds, f"stopped by the stuck-run sweep: no progress for {idle_seconds // 60} minutes")


def start_step(conn: Connection, run_id: str, step: str, item_key: str = "", llm_model: str | None = None) -> Row:
    """Record that a step (one item of it, for Map states) starts; a re-start counts as a retry."""
    store_runs.set_current_step(conn, run_id, step)
    return store_runs.upsert_running_step(conn, run_id, step, item_key, llm_model)


def complete_step(conn: Connection, run_id: str, step: str, item_key: str = "", *, token_usage: dict | None = None,
                  cost_usd: float = 0.0, llm_model: str | None = None, counts_toward_progress: bool = True) -> Row:
    """Record the step (item) completed; the run's progress counts it once, however often it completes."""
    previous = store_runs.select_step_status(conn, run_id, step, item_key)
    row = store_runs.upsert_completed_step(conn, run_id, step, item_key, token_usage, cost_usd, llm_model)
    if counts_toward_progress and previous != "completed":
        store_runs.count_step_done(conn, run_id)
    return row


def count_item_done(conn: Connection, run_id: str) -> None:
    """One more item of the run done where the item is not a run step of its own (an outreach target's browser
    job): the run's progress."""
    store_runs.count_step_done(conn, run_id)


def fail_step(conn: Connection, run_id: str, step: str, item_key: str = "", error: str = "") -> Row:
    return store_runs.upsert_failed_step(conn, run_id, step, item_key, error[:MAX_ERROR_LENGTH])


def step_status(conn: Connection, run_id: str, step: str, item_key: str = "") -> str | None:
    return store_runs.select_step_status(conn, run_id, step, item_key)


def list_steps(conn: Connection, run_id: str) -> list[Row]:
    get_run(conn, run_id)
    return store_runs.select_steps(conn, run_id)


def list_artifacts(conn: Connection, run_id: str) -> list[Row]:
    get_run(conn, run_id)
    return store_runs.select_artifacts(conn, run_id)


def write_output(conn: Connection, tenant_id: str, run_id: str, step: str, output: Any, *, summary: str,
                 metrics: dict | None = None, item_key: str = "") -> dict:
    """Store a step's output in S3, record the artifact, and return the small reference passed on in state."""
    key = f"{storage.step_prefix(tenant_id, run_id, step, item_key)}/output.json"
    body = json.dumps(output, ensure_ascii=False, default=str).encode()
    digest = storage.put_bytes(key, body, "application/json")
    record_artifact(conn, run_id, step, "json", key, digest, {"bytes": len(body), "item_key": item_key})
    return {"output_path": key, "output_digest": digest, "summary": summary[:500], "metrics": metrics or {}}


def write_file(conn: Connection, tenant_id: str, run_id: str, step: str, name: str, body: bytes, content_type: str,
               *, item_key: str = "", file_type: str | None = None) -> Row:
    """Store a file under the step's ``artifacts/`` folder (screenshots, images) and record it."""
    key = f"{storage.step_prefix(tenant_id, run_id, step, item_key)}/artifacts/{name}"
    digest = storage.put_bytes(key, body, content_type)
    return record_artifact(conn, run_id, step, file_type or content_type.split("/")[-1], key, digest,
                           {"bytes": len(body), "content_type": content_type, "item_key": item_key})


def record_artifact(conn: Connection, run_id: str, step: str, file_type: str, path: str, digest: str,
                    metadata: dict) -> Row:
    return store_runs.upsert_artifact(conn, run_id, step, file_type, path, digest, metadata)


def read_output(reference: dict) -> Any:
    """Load a step output from its reference, checking the digest."""
    return storage.get_json(reference["output_path"], reference.get("output_digest"))
