"""The community area's activity import jobs and the import's bulk path (a COPY into a staging table, then one
INSERT ... SELECT per chunk). The rules are in ``funnel.community.imports``."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from funnel.community.store_activities import INSERT_COLUMNS
from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

JOB_COLUMNS = ("job_id, source, status, file_path, encoding, metrics, error, created_at, started_at, finished_at, "
               "updated_at, created_by")
# The staging table has the activity's columns but the id, which the INSERT draws from the column's default.
STAGED_COLUMNS = tuple(c for c in INSERT_COLUMNS if c != "activity_id")


def insert_job(conn: Connection, created_by: str | None, encoding: str, metrics: dict[str, Any]) -> Row:
    return fetch_one(conn.execute(f"INSERT INTO activity_import_jobs (source, status, encoding, metrics, created_by) "
                                  f"VALUES ('csv', 'queued', %s, %s, %s) RETURNING {JOB_COLUMNS}",
                                  (encoding, Jsonb(metrics), created_by)))


def set_job_file(conn: Connection, job_id: UUID, file_path: str) -> None:
    conn.execute("UPDATE activity_import_jobs SET file_path = %s, updated_at = now() WHERE job_id = %s",
                 (file_path, job_id))


def job(conn: Connection, job_id: UUID | str) -> Row | None:
    return conn.execute(f"SELECT {JOB_COLUMNS} FROM activity_import_jobs WHERE job_id = %s", (job_id,)).fetchone()


def lock_job(conn: Connection, job_id: UUID | str) -> Row | None:
    return conn.execute(f"SELECT {JOB_COLUMNS} FROM activity_import_jobs WHERE job_id = %s FOR UPDATE",
                        (job_id,)).fetchone()


def jobs_page(conn: Connection, cursor: str | None, limit: int) -> Page:
    # keyset_page orders by (created_at, id): the job's key is job_id, so the table is read under that name
    return keyset_page(conn, table=f"(SELECT {JOB_COLUMNS}, job_id AS id FROM activity_import_jobs) AS jobs",
                       columns=f"{JOB_COLUMNS}, id", cursor=cursor, limit=limit)


def mark_running(conn: Connection, job_id: UUID | str) -> None:
    conn.execute("UPDATE activity_import_jobs SET status = 'running', started_at = coalesce(started_at, now()), "
                 "updated_at = now() WHERE job_id = %s", (job_id,))


def record_progress(conn: Connection, job_id: UUID | str, metrics: dict[str, Any]) -> None:
    conn.execute("UPDATE activity_import_jobs SET metrics = %s, updated_at = now() WHERE job_id = %s",
                 (Jsonb(metrics), job_id))


def finish_job(conn: Connection, job_id: UUID | str, status: str, metrics: dict[str, Any],
               error: str | None) -> None:
    conn.execute("UPDATE activity_import_jobs SET status = %s, metrics = %s, error = %s, finished_at = now(), "
                 "updated_at = now() WHERE job_id = %s", (status, Jsonb(metrics), error, job_id))


def without_synchronous_commit(conn: Connection) -> None:
    """This transaction's commit does not wait for its WAL flush: a crash can lose the last chunks committed,
    never half of one, and the import's queue retry redoes them from the job's recorded position."""
    conn.execute("SET LOCAL synchronous_commit = off")


def create_staging(conn: Connection) -> None:
    """A session-local staging table, emptied at each commit (created once per connection)."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS activity_import_staging (developer_id uuid, account_id uuid, anon_id text, "
        "resource_id uuid, action text, occurred_at timestamptz, source text, source_ref text, category text, "
        "group_key text, metadata jsonb, dedup_key text, "
        # the file's order: of two rows with one dedup key, the first one in the file is the one kept
        "file_order bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DELETE ROWS")


def copy_into_staging(conn: Connection, blocks: Iterable[bytes]) -> None:
    """COPY ``blocks`` of PostgreSQL text-format lines (STAGED_COLUMNS, tab-separated) into the staging table."""
    with conn.cursor() as cur, cur.copy(f"COPY activity_import_staging ({', '.join(STAGED_COLUMNS)}) "
                                        f"FROM STDIN") as copy:
        for block in blocks:
            copy.write(block)


def insert_from_staging(conn: Connection) -> int:
    """Move the staged rows into activities; a dedup key the tenant has (or that comes earlier) is skipped.
    Returns how many were inserted.

    The rows whose key is new are found first and inserted by a plain INSERT, inside a savepoint: ON CONFLICT's
    speculative insertion costs a second write of every row (its confirmation), and COPY cannot write a table
    under row-level security. A key another transaction inserted meanwhile makes the plain INSERT fail; the
    savepoint is rolled back and the chunk goes in with ON CONFLICT DO NOTHING instead."""
    columns = ", ".join(STAGED_COLUMNS)
    try:
        with conn.transaction():
            return conn.execute(
                f"INSERT INTO activities ({columns}) SELECT DISTINCT ON (s.dedup_key) {columns} "
                f"FROM activity_import_staging s WHERE s.dedup_key IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM activities a WHERE a.dedup_key = s.dedup_key) "
                f"ORDER BY s.dedup_key, s.file_order").rowcount
    except psycopg.errors.UniqueViolation:
        return conn.execute(f"INSERT INTO activities ({columns}) SELECT {columns} FROM activity_import_staging "
                            f"ORDER BY file_order ON CONFLICT (tenant_id, dedup_key) DO NOTHING").rowcount
