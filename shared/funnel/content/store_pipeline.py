"""What the article pipeline reads of the platform's tables beyond ``funnel.platform.runs``: a step output's
recorded digest (``artifacts``), the step that failed (``steps``) and who is told of a failure (``users``). Run and
step writes go through ``funnel.platform.runs``, the tenant's model choices through ``funnel.platform.llm``."""
from __future__ import annotations

from funnel.db import Connection, Row


def artifact_digest(conn: Connection, run_id: str, file_path: str) -> str | None:
    """The sha256 recorded for the run's artifact at ``file_path``; None when none is recorded."""
    row = conn.execute("SELECT digest FROM artifacts WHERE run_id = %s AND file_path = %s",
                       (run_id, file_path)).fetchone()
    return None if row is None else row["digest"]


def last_failed_step(conn: Connection, run_id: str) -> Row | None:
    """``step, item_key`` of the run's most recently started failed step."""
    return conn.execute("SELECT step, item_key FROM steps WHERE run_id = %s AND status = 'failed' "
                        "ORDER BY started_at DESC LIMIT 1", (run_id,)).fetchone()


def active_admin_ids(conn: Connection) -> list[str]:
    """The enabled owners and admins."""
    rows = conn.execute("SELECT id FROM users WHERE role IN ('owner', 'admin') AND NOT disabled").fetchall()
    return [str(row["id"]) for row in rows]



