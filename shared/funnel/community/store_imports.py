"""The community area's activity import jobs and the import's bulk path (a COPY into a staging table, then one
INSERT ... SELECT per chunk). The rules are in ``funnel.community.imports``."""
from __future__ import annotations

import json
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
# The columns an ingest writes (INSERT_COLUMNS), in the order of the import's COPY lines: first those the import
# resolves (accounts, resources), then the id it draws and the row's own (made while the file is read:
# funnel.community.imports.ParsedRow.copy_text).
STAGED_COLUMNS = ("developer_id", "account_id", "resource_id", "category", "group_key", "activity_id", "anon_id",
                  "action", "occurred_at", "source", "source_ref", "metadata", "dedup_key")
assert sorted(STAGED_COLUMNS) == sorted(INSERT_COLUMNS)


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


def requeue_job(conn: Connection, job_id: UUID | str) -> None:
    """A failed job queued again, its position and counts kept (the run resumes after them)."""
    conn.execute("UPDATE activity_import_jobs SET status = 'queued', error = NULL, finished_at = NULL, "
                 "updated_at = now() WHERE job_id = %s", (job_id,))


def fail_stalled_jobs(conn: Connection, older_than_seconds: int, error: str) -> list[Row]:
    """Fail the queued and running jobs whose last progress is older than ``older_than_seconds``; returns
    (job_id, status before, processed) of each."""
    return conn.execute(
        "UPDATE activity_import_jobs j SET status = 'failed', error = %s, finished_at = now(), updated_at = now() "
        "FROM (SELECT job_id, status FROM activity_import_jobs WHERE status IN ('queued', 'running') "
        "AND updated_at < now() - make_interval(secs => %s) FOR UPDATE) stalled WHERE j.job_id = stalled.job_id "
        "RETURNING j.job_id, stalled.status, coalesce((j.metrics->>'processed')::bigint, 0) AS processed",
        (error, older_than_seconds)).fetchall()


UPLOAD_COLUMNS = ("upload_id, file_path, declared_bytes, max_bytes, expires_at, job_id, created_by, created_at")


def insert_upload(conn: Connection, upload_id: UUID, file_path: str, declared_bytes: int, max_bytes: int,
                  valid_seconds: int, created_by: str | None) -> Row:
    return fetch_one(conn.execute(
        f"INSERT INTO activity_import_uploads (upload_id, file_path, declared_bytes, max_bytes, expires_at, "
        f"created_by) VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s), %s) RETURNING {UPLOAD_COLUMNS}",
        (upload_id, file_path, declared_bytes, max_bytes, valid_seconds, created_by)))


def lock_upload(conn: Connection, upload_id: UUID, import_within_seconds: int) -> Row | None:
    """The upload, locked, with whether its URL expired and whether it is past the time a job may be made of
    it (``import_within_seconds`` after the URL's expiry), by the database's clock."""
    return conn.execute(
        f"SELECT {UPLOAD_COLUMNS}, expires_at < now() AS url_expired, "
        f"expires_at + make_interval(secs => %s) < now() AS expired "
        f"FROM activity_import_uploads WHERE upload_id = %s FOR UPDATE", (import_within_seconds, upload_id)
    ).fetchone()


def attach_upload(conn: Connection, upload_id: UUID, job_id: UUID) -> None:
    conn.execute("UPDATE activity_import_uploads SET job_id = %s WHERE upload_id = %s", (job_id, upload_id))


def delete_expired_uploads(conn: Connection, import_within_seconds: int) -> list[str]:
    """Delete the uploads no job was made of in time; returns their files' keys."""
    rows = conn.execute("DELETE FROM activity_import_uploads WHERE job_id IS NULL "
                        "AND expires_at + make_interval(secs => %s) < now() RETURNING file_path",
                        (import_within_seconds,)).fetchall()
    return [r["file_path"] for r in rows]


def without_synchronous_commit(conn: Connection) -> None:
    """This transaction's commit does not wait for its WAL flush: a crash can lose the last chunks committed,
    never half of one, and the import's queue retry redoes them from the job's recorded position."""
    conn.execute("SET LOCAL synchronous_commit = off")


def create_staging(conn: Connection) -> None:
    """A session-local staging table, emptied at each commit (created once per connection): temporary, so its
    rows are written to no WAL and to local buffers."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS activity_import_staging (activity_id uuid, developer_id uuid, "
        "account_id uuid, anon_id text, resource_id uuid, action text, occurred_at timestamptz, source text, "
        "source_ref text, category text, group_key text, metadata jsonb, dedup_key text) ON COMMIT DELETE ROWS")


def copy_into_staging(conn: Connection, blocks: Iterable[bytes]) -> None:
    """COPY ``blocks`` of PostgreSQL text-format lines (STAGED_COLUMNS, tab-separated) into the staging table."""
    with conn.cursor() as cur, cur.copy(f"COPY activity_import_staging ({', '.join(STAGED_COLUMNS)}) "
                                        f"FROM STDIN") as copy:
        for block in blocks:
            copy.write(block)


def existing_dedup_keys(conn: Connection, dedup_keys: list[str]) -> list[str]:
    """Which of ``dedup_keys`` the tenant's activities have (one probe of the dedup key per key)."""
    if not dedup_keys:
        return []
    # sent as one JSON text: psycopg builds a text[] parameter element by element in Python, json in C
    return [r["dedup_key"] for r in conn.execute(
        "SELECT dedup_key FROM activities WHERE dedup_key = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))",
        (json.dumps(dedup_keys),)).fetchall()]


def insert_from_staging(conn: Connection) -> int:
    """Move the staged rows (new keys, each once: the import checked them) into activities. Returns how many
    were inserted.

    A plain INSERT, inside a savepoint: ON CONFLICT's speculative insertion costs a second write of every row
    (its confirmation), and COPY cannot write a table under row-level security. A key another transaction
    inserted since the import looked makes the plain INSERT fail; the savepoint is rolled back and the chunk
    goes in with ON CONFLICT DO NOTHING instead (that key counts as a duplicate)."""
    columns = ", ".join(STAGED_COLUMNS)
    try:
        with conn.transaction():
            return conn.execute(f"INSERT INTO activities ({columns}) SELECT {columns} FROM activity_import_staging"
                                ).rowcount
    except psycopg.errors.UniqueViolation:
        return conn.execute(f"INSERT INTO activities ({columns}) SELECT {columns} FROM activity_import_staging "
                            f"ON CONFLICT (tenant_id, dedup_key) DO NOTHING").rowcount
