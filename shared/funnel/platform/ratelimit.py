"""Fixed-window counters in the control DB (Lambdas share no memory)."""
from __future__ import annotations

from funnel import db


def count(key: str, window_seconds: int) -> int:
    with db.control_transaction() as conn:
        row = conn.execute(
            "SELECT count FROM rate_limit_counters WHERE key = %s "
            "AND window_start = to_timestamp(floor(extract(epoch FROM now()) / %s) * %s)",
            (key, window_seconds, window_seconds)).fetchone()
    return row["count"] if row else 0


def hit(key: str, window_seconds: int) -> int:
    with db.control_transaction() as conn:
        row = conn.execute(
            "INSERT INTO rate_limit_counters (key, window_start, count) "
            "VALUES (%s, to_timestamp(floor(extract(epoch FROM now()) / %s) * %s), 1) "
            "ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limit_counters.count + 1 "
            "RETURNING count", (key, window_seconds, window_seconds)).fetchone()
        # Old windows are useless; prune a few on the way (cheap, bounded).
        conn.execute("DELETE FROM rate_limit_counters WHERE ctid IN (SELECT ctid FROM rate_limit_counters "
                     "WHERE window_start < now() - interval '1 day' LIMIT 100)")
    return row["count"]
