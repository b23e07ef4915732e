"""Data access of the content schedules and their firings (``schedules``, ``schedule_jobs``).

The rules (cron validation, next run, at most one job per scheduled time, the EventBridge schedule) stay in
``schedules``; a job's status follows its run in ``generation`` and ``pipeline``. Rows are dict rows shaped
like ``models.ContentSchedule`` and ``models.ScheduleJob``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from funnel.content.store_rows import delete_by_id, insert_row, select_by_id, update_by_id
from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

SCHEDULE_COLUMNS = ("id, user_id, site_id, product_id, cron_expression, timezone, articles_per_run, publish_mode, "
                    "is_active, next_run_at, scheduler_name, created_at, updated_at")
JOB_COLUMNS = ("id, schedule_id, scheduled_for, run_id, status, started_at, completed_at, articles_generated, "
               "error_message, created_at")
JOBS_LISTED = 100


# ---------------------------------------------------------------- schedules
def insert_schedule(conn: Connection, values: dict[str, Any]) -> Row:
    """``values``: user_id, next_run_at and the columns of ``routes.ScheduleBody``."""
    return insert_row(conn, "schedules", values, SCHEDULE_COLUMNS)


def get_schedule(conn: Connection, schedule_id: str, *, for_update: bool = False) -> Row | None:
    return select_by_id(conn, "schedules", SCHEDULE_COLUMNS, schedule_id, for_update=for_update)


def update_schedule(conn: Connection, schedule_id: str, changes: dict[str, Any]) -> Row | None:
    return update_by_id(conn, "schedules", SCHEDULE_COLUMNS, schedule_id, changes)


def set_scheduler_name(conn: Connection, schedule_id: str, name: str) -> Row:
    """Right after the insert, in its transaction (the name carries the new id)."""
    return fetch_one(conn.execute(f"UPDATE schedules SET scheduler_name = %s WHERE id = %s "
                                  f"RETURNING {SCHEDULE_COLUMNS}", (name, schedule_id)))


def set_next_run(conn: Connection, schedule_id: str, next_run_at: datetime) -> None:
    conn.execute("UPDATE schedules SET next_run_at = %s WHERE id = %s", (next_run_at, schedule_id))


def list_schedules(conn: Connection, cursor: str | None, limit: int) -> Page:
    return keyset_page(conn, table="schedules", columns=SCHEDULE_COLUMNS, cursor=cursor, limit=limit)


def delete_schedule(conn: Connection, schedule_id: str) -> bool:
    return delete_by_id(conn, "schedules", schedule_id)


# ---------------------------------------------------------------- jobs (firings)
def insert_job(conn: Connection, schedule_id: str, scheduled_for: datetime) -> Row | None:
    """A queued job for this occurrence; None when one exists (UNIQUE (schedule_id, scheduled_for))."""
    return conn.execute(f"INSERT INTO schedule_jobs (schedule_id, scheduled_for, status) VALUES (%s, %s, 'queued') "
                        f"ON CONFLICT (schedule_id, scheduled_for) DO NOTHING RETURNING {JOB_COLUMNS}",
                        (schedule_id, scheduled_for)).fetchone()


def latest_jobs(conn: Connection, schedule_id: str) -> list[Row]:
    """The latest ``JOBS_LISTED`` jobs, newest scheduled time first."""
    return conn.execute(f"SELECT {JOB_COLUMNS} FROM schedule_jobs WHERE schedule_id = %s "
                        f"ORDER BY scheduled_for DESC LIMIT {JOBS_LISTED}", (schedule_id,)).fetchall()


def job_started(conn: Connection, job_id: str, run_id: str) -> None:
    conn.execute("UPDATE schedule_jobs SET run_id = %s, status = 'running', started_at = now() WHERE id = %s",
                 (run_id, job_id))


def job_running_again(conn: Connection, job_id: str) -> None:
    """Its run is resumed."""
    conn.execute("UPDATE schedule_jobs SET status = 'running', error_message = NULL, completed_at = NULL "
                 "WHERE id = %s", (job_id,))


def job_completed(conn: Connection, job_id: str, articles_generated: int) -> None:
    conn.execute("UPDATE schedule_jobs SET status = 'completed', completed_at = now(), articles_generated = %s "
                 "WHERE id = %s", (articles_generated, job_id))


def job_failed(conn: Connection, job_id: str, error_message: str) -> None:
    conn.execute("UPDATE schedule_jobs SET status = 'failed', completed_at = now(), error_message = %s "
                 "WHERE id = %s", (error_message, job_id))
