"""Per-request bookkeeping's data access: Idempotency-Keys (tenant DB, ``idempotency_keys``) and the
rate-limit windows (control DB, ``rate_limit_windows``).

The rules (a key's validity, replay or refusal, releasing a key after a server error; what is limited and how
much) stay in ``funnel.platform.idempotency`` and the callers of ``funnel.platform.ratelimit``.
"""
from __future__ import annotations

from funnel.db import Connection, Row, fetch_one

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


# ---------------------------------------------------------------- rate-limit windows (control DB)

def add_hit(conn: Connection, key: str, window_seconds: int) -> Row:
    """One more hit for ``key``, counted by this single upsert (concurrent hits queue on the row's lock, so each
    sees its own count). A window starts at its key's first hit and lasts ``window_seconds``; a hit after it
    starts a new one. Returns ``count`` (with this hit), ``window_start`` and ``seconds_left`` (until the
    window ends, rounded up)."""
    return fetch_one(conn.execute(
        "INSERT INTO rate_limit_windows AS w (key, window_start, count) VALUES (%(key)s, now(), 1) "
        "ON CONFLICT (key) DO UPDATE SET "
        "count = CASE WHEN w.window_start <= now() - make_interval(secs => %(window)s) THEN 1 ELSE w.count + 1 END, "
        "window_start = CASE WHEN w.window_start <= now() - make_interval(secs => %(window)s) THEN now() "
        "ELSE w.window_start END "
        "RETURNING count, window_start, "
        "ceil(extract(epoch FROM w.window_start + make_interval(secs => %(window)s) - now()))::int AS seconds_left",
        {"key": key, "window": window_seconds}))


def remove_hit(conn: Connection, key: str, window_start: object) -> None:
    """Take back one hit of the window that started at ``window_start`` (a newer window is left alone)."""
    conn.execute("UPDATE rate_limit_windows SET count = count - 1 WHERE key = %s AND window_start = %s "
                 "AND count > 0", (key, window_start))


def prune_old_windows(conn: Connection, batch: int = 100) -> None:
    """Delete up to ``batch`` windows that started more than a day ago (cheap and bounded, so a hit can do it
    on the way; no window lasts a day)."""
    conn.execute("DELETE FROM rate_limit_windows WHERE key IN (SELECT key FROM rate_limit_windows "
                 "WHERE window_start < now() - interval '1 day' LIMIT %s)", (batch,))
