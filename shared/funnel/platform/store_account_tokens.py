"""Single-use account links' data access: every SQL statement over the control DB's ``account_tokens``.

A row per signed link mailed to a user (e-mail verification, password reset), keyed by the token's ``jti``.
The rules (what a link does once spent) stay in ``funnel.platform.account_tokens``.
"""
from __future__ import annotations

from funnel.db import Connection, Row


def insert_token(conn: Connection, jti: str, purpose: str, tenant_id: str, user_id: str, ttl_seconds: int) -> None:
    conn.execute("INSERT INTO account_tokens (jti, purpose, tenant_id, user_id, expires_at) "
                 "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))",
                 (jti, purpose, tenant_id, user_id, ttl_seconds))


def spend(conn: Connection, jti: str, purpose: str, tenant_id: str, user_id: str) -> Row | None:
    """Mark the live, unspent token ``jti`` spent; None when it is unknown, spent, expired or not this user's.
    One statement: of two requests with the same link only one spends it."""
    return conn.execute(
        "UPDATE account_tokens SET used_at = now() WHERE jti = %s AND purpose = %s AND tenant_id = %s "
        "AND user_id = %s AND used_at IS NULL AND expires_at > now() RETURNING jti, tenant_id, user_id",
        (jti, purpose, tenant_id, user_id)).fetchone()


def spend_all_of_user(conn: Connection, purpose: str, tenant_id: str, user_id: str) -> int:
    """Spend every live token of ``purpose`` of the user (a newer link, or the password changed, voids older ones)."""
    return conn.execute(
        "UPDATE account_tokens SET used_at = now() WHERE purpose = %s AND tenant_id = %s AND user_id = %s "
        "AND used_at IS NULL", (purpose, tenant_id, user_id)).rowcount


def prune_expired(conn: Connection, limit: int = 500) -> None:
    """Forget a few tokens expired more than a day ago (they prove nothing any more)."""
    conn.execute("DELETE FROM account_tokens WHERE jti IN (SELECT jti FROM account_tokens "
                 "WHERE expires_at < now() - interval '1 day' LIMIT %s)", (limit,))
