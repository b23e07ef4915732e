"""Per-request bookkeeping's data access: Idempotency-Keys (tenant DB, ``idempotency_keys``) and the
fixed-window rate-limit counters (control DB, ``rate_limit_counters``).

The rules (a key's validity, replay or refusal, releasing a key after a server error; what is limited and how
much) stay in ``funnel.platform.idempotency`` and the callers of ``funnel.platform.ratelimit``.
"""
from __future__ import annotations

from funnel.db import Connection, Row, fetch_one

# The start of the current fixed window of %s seconds (params: the window twice), on the database's clock so
# every Lambda counts into the same window.
_WINDOW_START = "to_timestamp(floor(extract(epoch FROM now()) / %s) * %s)"


# ---------------------------------------------------------------- Idempotency-Keys (tenant DB)

def delete_expired_keys(conn: Connection, principal: str, max_age_hours: int) -> None:
    conn.execute("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => %s) "
                 "AND principal = %s", (max_age_hours, principal))


def insert_key(conn: Connection, principal: str, key: str, method: str, path: str, request_hash: str) -> bool:
    """Claim the key (no response yet); False when the principal already holds it (a retry, or a concurrent
    request: then this waits until that one's claim commits)."""
    return conn.execute("INSERT INTO idempotency_keys (principal, key, method, path, request_hash) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (principal, key, method, path, request_hash)).rowcount == 1


def select_key(conn: Connection, principal: str, key: str) -> Row | None:
    """``request_hash, status_code, response_body, content_type`` (status_code None while in progress)."""
    return conn.execute("SELECT request_hash, status_code, response_body, content_type FROM idempotency_keys "
                        "WHERE principal = %s AND key = %s", (principal, key)).fetchone()


def store_response(conn: Connection, principal: str, key: str, status_code: int, body: str,
                   content_type: str) -> None:
    conn.execute("UPDATE idempotency_keys SET status_code = %s, response_body = %s, content_type = %s "
                 "WHERE principal = %s AND key = %s", (status_code, body, content_type, principal, key))


def delete_key(conn: Connection, principal: str, key: str) -> None:
    conn.execute("DELETE FROM idempotency_keys WHERE principal = %s AND key = %s", (principal, key))


# ---------------------------------------------------------------- rate-limit counters (control DB)

def window_count(conn: Connection, key: str, window_seconds: int) -> int:
    row = conn.execute(f"SELECT count FROM rate_limit_counters WHERE key = %s AND window_start = {_WINDOW_START}",
                       (key, window_seconds, window_seconds)).fetchone()
    return int(row["count"]) if row else 0


def add_hit(conn: Connection, key: str, window_seconds: int) -> int:
    """One more hit in the current window; returns the window's count."""
    return int(fetch_one(conn.execute(
        f"INSERT INTO rate_limit_counters (key, window_start, count) VALUES (%s, {_WINDOW_START}, 1) "
        f"ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limit_counters.count + 1 RETURNING count",
        (key, window_seconds, window_seconds)))["count"])


def prune_old_windows(conn: Connection, batch: int = 100) -> None:
    """Delete up to ``batch`` windows older than a day (cheap and bounded, so a hit can do it on the way)."""
    conn.execute("DELETE FROM rate_limit_counters WHERE ctid IN (SELECT ctid FROM rate_limit_counters "
                 "WHERE window_start < now() - interval '1 day' LIMIT %s)", (batch,))
