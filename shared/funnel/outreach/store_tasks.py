"""The outreach area's data access for send tasks: every SQL statement over ``tasks``, ``task_targets``,
``sent_history`` and ``ai_runs`` (and the tenant's AI settings the personalisation uses), as small named
functions.

The rules (which targets are skipped or deferred, which task status follows which, what a phase sends) stay
in ``tasks``, ``safety``, ``pipeline`` and ``worker``, which call these. Rows are psycopg dict rows,
returned as they come: the routes' response models validate exactly these shapes.
"""
from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from funnel.db import Connection, Row
from funnel.platform.pagination import Page, keyset_page

TASK_COLUMNS = "id, user_id, name, mode, status, settings, run_id, started_at, finished_at, created_at"
TARGET_COLUMNS = ("id, task_id, contact_id, target_url, domain, company_name, subject, message, status, retry_count, "
                  "result_summary, screenshots, fields, fields_file, last_attempt_at, created_at")
AI_RUN_COLUMNS = "id, task_target_id, step, model, prompt_tokens, completion_tokens, cost_estimate, created_at"
# Targets not sent yet: what cancelling a task skips.
UNSENT = "('pending', 'queued', 'approved', 'review')"


# ---------------------------------------------------------------- tasks

def insert_task(conn: Connection, user_id: str | None, name: str, mode: str, settings: dict[str, Any]) -> Row:
    row = conn.execute(f"INSERT INTO tasks (user_id, name, mode, settings) VALUES (%s, %s, %s, %s) "
                       f"RETURNING {TASK_COLUMNS}", (user_id, name, mode, Jsonb(settings))).fetchone()
    assert row is not None  # INSERT ... RETURNING returns the row it inserted
    return row


def get_task(conn: Connection, task_id: str, for_update: bool = False) -> Row | None:
    """The task (``TASK_COLUMNS``), locked FOR UPDATE when asked; None when there is none."""
    return conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = %s{' FOR UPDATE' if for_update else ''}",
                        (task_id,)).fetchone()


def tasks_page(conn: Connection, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table="tasks", columns=TASK_COLUMNS, cursor=cursor, limit=limit)


def mark_task_running(conn: Connection, task_id: str, run_id: str) -> None:
    """Running the run ``run_id``; ``started_at`` is the first start's."""
    conn.execute("UPDATE tasks SET status = 'running', run_id = %s, started_at = coalesce(started_at, now()), "
                 "finished_at = NULL WHERE id = %s", (run_id, task_id))


def restore_task(conn: Connection, task_id: str, status: str, started_at: Any) -> None:
    """Put back the status and ``started_at`` a start found (the pipeline could not be started)."""
    conn.execute("UPDATE tasks SET status = %s, started_at = %s WHERE id = %s", (status, started_at, task_id))


def set_task_status(conn: Connection, task_id: str, status: str) -> None:
    conn.execute("UPDATE tasks SET status = %s WHERE id = %s", (status, task_id))


def end_task(conn: Connection, task_id: str, status: str) -> Row | None:
    """``status`` with ``finished_at`` now (cancelled, failed); returns its ``name, user_id``."""
    return conn.execute("UPDATE tasks SET status = %s, finished_at = now() WHERE id = %s RETURNING name, user_id",
                        (status, task_id)).fetchone()


def finish_run_of_task(conn: Connection, task_id: str, status: str) -> None:
    """The status a pipeline run leaves the task in; ``finished_at`` is set only when it is completed."""
    conn.execute("UPDATE tasks SET status = %s, finished_at = CASE WHEN %s = 'completed' THEN now() END "
                 "WHERE id = %s", (status, status, task_id))


# ---------------------------------------------------------------- targets

def insert_target(conn: Connection, task_id: str, *, contact_id: str | None, target_url: str, domain: str,
                  company_name: str, subject: str | None, message: str, status: str,
                  result_summary: str | None) -> None:
    conn.execute("INSERT INTO task_targets (task_id, contact_id, target_url, domain, company_name, subject, message, "
                 "status, result_summary) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (task_id, contact_id, target_url, domain, company_name, subject, message, status, result_summary))


def target_counts(conn: Connection, task_id: str) -> dict[str, int]:
    """The task's targets by status (statuses no target has are absent)."""
    rows = conn.execute("SELECT status, count(*) AS n FROM task_targets WHERE task_id = %s GROUP BY status",
                        (task_id,)).fetchall()
    return {row["status"]: row["n"] for row in rows}


def target_counts_of_tasks(conn: Connection, task_ids: list[Any]) -> dict[str, dict[str, int]]:
    """Each of the tasks' targets by status (``target_counts`` for a page of tasks, in one statement)."""
    rows = conn.execute("SELECT task_id, status, count(*) AS n FROM task_targets WHERE task_id = ANY(%s::uuid[]) "
                        "GROUP BY task_id, status", ([str(task_id) for task_id in task_ids],)).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(str(row["task_id"]), {})[row["status"]] = row["n"]
    return counts


def targets_page(conn: Connection, task_id: str, status: str | None, cursor: str | None, limit: int) -> Page:
    """A page of the task's targets (``TARGET_COLUMNS``; only those in ``status`` when given), in the order they
    were added."""
    return keyset_page(conn, table="task_targets", columns=TARGET_COLUMNS, cursor=cursor, limit=limit,
                       filters={"task_id": task_id, "status": status}, newest_first=False)


def has_targets(conn: Connection, task_id: str, status: str) -> bool:
    return conn.execute("SELECT 1 FROM task_targets WHERE task_id = %s AND status = %s LIMIT 1",
                        (task_id, status)).fetchone() is not None


def count_targets(conn: Connection, task_id: str, status: str) -> int:
    row = conn.execute("SELECT count(*) AS n FROM task_targets WHERE task_id = %s AND status = %s",
                       (task_id, status)).fetchone()
    assert row is not None  # an aggregate without GROUP BY returns one row
    return int(row["n"])


def targets_to_prepare(conn: Connection, task_id: str, status: str) -> list[Row]:
    """``id, target_url, company_name, message`` of the task's targets in ``status``, in the order they were added."""
    return conn.execute("SELECT id, target_url, company_name, message FROM task_targets WHERE task_id = %s "
                        "AND status = %s ORDER BY created_at, id", (task_id, status)).fetchall()


def target_ids(conn: Connection, task_id: str, status: str) -> list[Any]:
    """The ids of the task's targets in ``status``, in the order they were added."""
    rows = conn.execute("SELECT id FROM task_targets WHERE task_id = %s AND status = %s ORDER BY created_at, id",
                        (task_id, status)).fetchall()
    return [row["id"] for row in rows]


def get_target(conn: Connection, task_id: str, target_id: str) -> Row | None:
    """The whole target row, when it is the task's."""
    return conn.execute("SELECT * FROM task_targets WHERE id = %s AND task_id = %s", (target_id, task_id)).fetchone()


def move_targets(conn: Connection, task_id: str, from_statuses: tuple[str, ...], to_status: str) -> None:
    """Every target of the task in one of ``from_statuses`` to ``to_status``."""
    conn.execute("UPDATE task_targets SET status = %s WHERE task_id = %s AND status = ANY(%s)",
                 (to_status, task_id, list(from_statuses)))


def skip_unsent_targets(conn: Connection, task_id: str, reason: str) -> None:
    conn.execute(f"UPDATE task_targets SET status = 'skipped', result_summary = %s "
                 f"WHERE task_id = %s AND status IN {UNSENT}", (reason, task_id))


def review_target(conn: Connection, task_id: str, target_id: str, status: str) -> Row | None:
    """The task's target waiting for review to ``status`` (``TARGET_COLUMNS``); None when none is waiting."""
    return conn.execute(f"UPDATE task_targets SET status = %s WHERE id = %s AND task_id = %s AND status = 'review' "
                        f"RETURNING {TARGET_COLUMNS}", (status, target_id, task_id)).fetchone()


def edit_target_in_review(conn: Connection, task_id: str, target_id: str, changes: dict[str, str | None]) -> Row | None:
    """The task's target waiting for review with ``changes`` (``subject`` and/or ``message``) applied
    (``TARGET_COLUMNS``); None when it is not waiting for review."""
    columns = [column for column in ("subject", "message") if column in changes]
    assignments = ", ".join(f"{column} = %s" for column in columns) or "subject = subject"
    return conn.execute(f"UPDATE task_targets SET {assignments} WHERE id = %s AND task_id = %s AND status = 'review' "
                        f"RETURNING {TARGET_COLUMNS}",
                        (*(changes[column] for column in columns), target_id, task_id)).fetchone()


def set_target_message(conn: Connection, target_id: str, message: str) -> None:
    conn.execute("UPDATE task_targets SET message = %s WHERE id = %s", (message, target_id))


def record_attempt(conn: Connection, target_id: str, status: str, result_summary: str) -> None:
    """An attempt now ended in ``status``, and what happened."""
    conn.execute("UPDATE task_targets SET status = %s, result_summary = %s, last_attempt_at = now() WHERE id = %s",
                 (status, result_summary, target_id))


def defer_target(conn: Connection, target_id: str, result_summary: str) -> None:
    """An attempt now that did not send (the status stays), and why."""
    conn.execute("UPDATE task_targets SET result_summary = %s, last_attempt_at = now() WHERE id = %s",
                 (result_summary, target_id))


def mark_target_running(conn: Connection, target_id: str) -> None:
    conn.execute("UPDATE task_targets SET status = 'running', last_attempt_at = now() WHERE id = %s", (target_id,))


def put_back_target(conn: Connection, target_id: str, status: str, result_summary: str) -> None:
    """Back to ``status`` without counting an attempt (the browser was never opened)."""
    conn.execute("UPDATE task_targets SET status = %s, result_summary = %s WHERE id = %s",
                 (status, result_summary, target_id))


def record_failed_attempt(conn: Connection, target_id: str, max_attempts: int, result_summary: str) -> Row:
    """One more failed attempt: ``failed`` at the ``max_attempts``-th, else ``pending`` again; returns its
    ``retry_count, status``."""
    row = conn.execute("UPDATE task_targets SET retry_count = retry_count + 1, status = CASE WHEN "
                       "retry_count + 1 >= %s THEN 'failed' ELSE 'pending' END, result_summary = %s "
                       "WHERE id = %s RETURNING retry_count, status",
                       (max_attempts, result_summary, target_id)).fetchone()
    assert row is not None  # the worker holds the target it runs (targets are deleted only with their task)
    return row


def fail_unfinished_target(conn: Connection, target_id: str, result_summary: str) -> None:
    """``failed`` unless the target already reached an outcome (the pipeline gave up on it)."""
    conn.execute("UPDATE task_targets SET status = 'failed', result_summary = %s, last_attempt_at = now() "
                 "WHERE id = %s AND status IN ('queued', 'running', 'pending', 'approved')",
                 (result_summary, target_id))


def record_form_result(conn: Connection, target_id: str, status: str, result_summary: str,
                       screenshots: list[str], fields: list[dict[str, Any]], fields_file: str | None) -> None:
    """The attempt's outcome, its screenshots' and fields file's object keys and the filled fields."""
    conn.execute("UPDATE task_targets SET status = %s, result_summary = %s, screenshots = %s, fields = %s, "
                 "fields_file = %s, last_attempt_at = now() WHERE id = %s",
                 (status, result_summary, Jsonb(screenshots), Jsonb(fields), fields_file, target_id))


# ---------------------------------------------------------------- sent history (re-contact interval, daily cap)

def contacted_within(conn: Connection, domain: str, days: int) -> bool:
    return conn.execute("SELECT 1 FROM sent_history WHERE domain = %s AND sent_at > now() - make_interval(days => %s) "
                        "LIMIT 1", (domain, days)).fetchone() is not None


def record_sent(conn: Connection, domain: str, contact_id: str | None, task_id: str, channel: str = "form") -> None:
    conn.execute("INSERT INTO sent_history (domain, contact_id, task_id, channel) VALUES (%s, %s, %s, %s)",
                 (domain, contact_id, task_id, channel))


def submitted_today(conn: Connection, timezone: str) -> int:
    """Submissions since midnight in ``timezone``."""
    row = conn.execute("SELECT count(*) AS n FROM sent_history "
                       "WHERE sent_at >= date_trunc('day', now() AT TIME ZONE %s) AT TIME ZONE %s",
                       (timezone, timezone)).fetchone()
    assert row is not None  # an aggregate without GROUP BY returns one row
    return int(row["n"])


# ---------------------------------------------------------------- AI personalisation

def personalised_targets(conn: Connection, step: str, target_ids: list[Any]) -> set[Any]:
    """Those of ``target_ids`` with an ``ai_runs`` row for ``step``."""
    rows = conn.execute("SELECT DISTINCT task_target_id FROM ai_runs WHERE step = %s "
                        "AND task_target_id = ANY(%s::uuid[])", (step, target_ids)).fetchall()
    return {row["task_target_id"] for row in rows}


def insert_ai_run(conn: Connection, target_id: str, step: str, *, model: str, prompt_tokens: int,
                  completion_tokens: int, cost_estimate: float, response: dict[str, Any]) -> None:
    conn.execute("INSERT INTO ai_runs (task_target_id, step, model, prompt_tokens, completion_tokens, cost_estimate, "
                 "response_json) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (target_id, step, model, prompt_tokens, completion_tokens, cost_estimate, Jsonb(response)))


def ai_runs_of_targets(conn: Connection, target_ids: list[Any]) -> list[Row]:
    """The model calls (``AI_RUN_COLUMNS``) for any of ``target_ids``, oldest first."""
    return conn.execute(f"SELECT {AI_RUN_COLUMNS} FROM ai_runs WHERE task_target_id = ANY(%s::uuid[]) "
                        "ORDER BY created_at, id", ([str(target_id) for target_id in target_ids],)).fetchall()


def llm_usage_of_task(conn: Connection, task_id: str) -> Row:
    """``runs, prompt_tokens, completion_tokens, cost_estimate`` summed over the task's targets' ``ai_runs``."""
    row = conn.execute("SELECT count(*) AS runs, coalesce(sum(r.prompt_tokens), 0) AS prompt_tokens, "
                       "coalesce(sum(r.completion_tokens), 0) AS completion_tokens, "
                       "coalesce(sum(r.cost_estimate), 0) AS cost_estimate "
                       "FROM ai_runs r JOIN task_targets t ON t.id = r.task_target_id WHERE t.task_id = %s",
                       (task_id,)).fetchone()
    assert row is not None  # an aggregate without GROUP BY returns one row
    return row
