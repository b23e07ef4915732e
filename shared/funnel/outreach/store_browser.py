"""The outreach area's data access for the browser worker: every SQL statement over ``browser_jobs`` (the
per-user slots and the single ``submitting`` claim of a target), the locks that serialise claiming them, the
user's ``max_concurrency`` and the run's progress counter, as small named functions.

The rules (when a slot is free, the daily cap under the lock, what a crash between click and
acknowledgement means) stay in ``worker``, which calls these.
"""
from __future__ import annotations

from funnel.db import Connection

# A job holding a slot: running, or claimed its target's submission.
BUSY = "('running', 'submitting')"


def lock_user_slots(conn: Connection, user_id: str) -> None:
    """Until the transaction ends, no other worker claims a slot of ``user_id``."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"browser-slots:{user_id}",))


def lock_daily_cap(conn: Connection, tenant_id: str) -> None:
    """Until the transaction ends, no other worker counts the tenant's submissions against its daily cap."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"daily-cap:{tenant_id}",))


def _count(conn: Connection, sql: str, params: tuple) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None  # an aggregate without GROUP BY returns one row
    return int(row["n"])


def jobs_in_flight(conn: Connection, heartbeat_within_seconds: int) -> int:
    """The tenant's busy jobs with a heartbeat within the last ``heartbeat_within_seconds``."""
    return _count(conn, f"SELECT count(*) AS n FROM browser_jobs WHERE state IN {BUSY} "
                        f"AND heartbeat_at > now() - make_interval(secs => %s)", (heartbeat_within_seconds,))


def time_out_silent_jobs(conn: Connection, user_id: str, silent_for_seconds: int) -> None:
    """The user's running jobs without a heartbeat for ``silent_for_seconds`` are timed out (their slots free)."""
    conn.execute("UPDATE browser_jobs SET state = 'timed_out', ended_at = now(), error = 'no heartbeat' "
                 "WHERE user_id = %s AND state = 'running' AND heartbeat_at < now() - make_interval(secs => %s)",
                 (user_id, silent_for_seconds))


def max_concurrency(conn: Connection, user_id: str) -> int | None:
    """The user's ``max_concurrency`` (None when the user is gone)."""
    row = conn.execute("SELECT max_concurrency FROM users WHERE id = %s", (user_id,)).fetchone()
    return None if row is None else int(row["max_concurrency"])


def busy_jobs(conn: Connection, user_id: str) -> int:
    return _count(conn, f"SELECT count(*) AS n FROM browser_jobs WHERE user_id = %s AND state IN {BUSY}",
                  (user_id,))


def insert_job(conn: Connection, target_id: str, user_id: str) -> str:
    """A running job (a taken slot); returns its id."""
    row = conn.execute("INSERT INTO browser_jobs (task_target_id, user_id) VALUES (%s, %s) RETURNING id",
                       (target_id, user_id)).fetchone()
    assert row is not None  # INSERT ... RETURNING returns the row it inserted
    return str(row["id"])


def claim_submission(conn: Connection, job_id: str) -> None:
    """The job becomes its target's one ``submitting`` job; raises UniqueViolation when another job holds it."""
    conn.execute("UPDATE browser_jobs SET state = 'submitting', heartbeat_at = now() WHERE id = %s", (job_id,))


def submission_claimed(conn: Connection, target_id: str) -> bool:
    """Whether a job of the target claimed its submission (or submitted it)."""
    return conn.execute("SELECT 1 FROM browser_jobs WHERE task_target_id = %s AND state IN "
                        "('submitting', 'submitted')", (target_id,)).fetchone() is not None


def fail_running_job(conn: Connection, job_id: str, error: str) -> None:
    """``failed`` unless the job claimed its submission already."""
    conn.execute("UPDATE browser_jobs SET state = 'failed', error = %s, ended_at = now() WHERE id = %s AND "
                 "state = 'running'", (error, job_id))


def end_job(conn: Connection, job_id: str, state: str) -> None:
    conn.execute("UPDATE browser_jobs SET state = %s, ended_at = now() WHERE id = %s", (state, job_id))

