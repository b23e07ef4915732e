"""Sign-in sessions' data access: every SQL statement over the control DB's ``refresh_token_families``.

A family is one sign-in: its refresh token rotates (``current_jti`` is the only one that refreshes) and its
access tokens name it. The rules (when a family is revoked, what a replay means) stay in ``auth`` and
``users``, which call these.
"""
from __future__ import annotations

from funnel.db import Connection, fetch_one


def insert_family(conn: Connection, tenant_id: str, user_id: str, jti: str, ttl_seconds: int) -> str:
    """A new family whose current refresh token is ``jti``, valid ``ttl_seconds``; returns its id."""
    return str(fetch_one(conn.execute(
        "INSERT INTO refresh_token_families (tenant_id, user_id, current_jti, expires_at) "
        "VALUES (%s, %s, %s, now() + make_interval(secs => %s)) RETURNING id",
        (tenant_id, user_id, jti, ttl_seconds)))["id"])


def rotate(conn: Connection, family_id: str, tenant_id: str, user_id: str, jti: str, new_jti: str,
           ttl_seconds: int) -> bool:
    """Replace the family's current refresh token ``jti`` by ``new_jti`` (valid ``ttl_seconds`` more); False when
    ``jti`` is not the current one, or the family is revoked, expired or not this user's. One statement, so of
    two refreshes with the same token only one rotates."""
    return conn.execute(
        "UPDATE refresh_token_families SET current_jti = %s, rotated_at = now(), "
        "expires_at = now() + make_interval(secs => %s) "
        "WHERE id = %s AND tenant_id = %s AND user_id = %s AND current_jti = %s AND revoked_at IS NULL "
        "AND expires_at > now()",
        (new_jti, ttl_seconds, family_id, tenant_id, user_id, jti)).rowcount == 1


def is_current(conn: Connection, family_id: str, tenant_id: str, user_id: str, jti: str) -> bool:
    """True when ``jti`` is the live family's current refresh token."""
    return conn.execute(
        "SELECT 1 FROM refresh_token_families WHERE id = %s AND tenant_id = %s AND user_id = %s "
        "AND current_jti = %s AND revoked_at IS NULL AND expires_at > now()",
        (family_id, tenant_id, user_id, jti)).fetchone() is not None


def is_live(conn: Connection, family_id: str, tenant_id: str, user_id: str) -> bool:
    """True when the family is this user's, not revoked and not expired (its access tokens are good)."""
    return conn.execute(
        "SELECT 1 FROM refresh_token_families WHERE id = %s AND tenant_id = %s AND user_id = %s "
        "AND revoked_at IS NULL AND expires_at > now()", (family_id, tenant_id, user_id)).fetchone() is not None


def revoke_family(conn: Connection, family_id: str, tenant_id: str, user_id: str, reason: str) -> None:
    """Revoke the family (one already revoked keeps its first time and reason)."""
    conn.execute("UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = %s "
                 "WHERE id = %s AND tenant_id = %s AND user_id = %s AND revoked_at IS NULL",
                 (reason, family_id, tenant_id, user_id))


def revoke_user_families(conn: Connection, tenant_id: str, user_id: str, reason: str) -> int:
    """Revoke every live family of the user; returns how many."""
    return conn.execute("UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = %s "
                        "WHERE tenant_id = %s AND user_id = %s AND revoked_at IS NULL",
                        (reason, tenant_id, user_id)).rowcount


def revoke_other_families(conn: Connection, tenant_id: str, user_id: str, keep_family_id: str, reason: str) -> int:
    """Revoke every live family of the user but ``keep_family_id`` (the session changing the password goes on);
    returns how many."""
    return conn.execute("UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = %s "
                        "WHERE tenant_id = %s AND user_id = %s AND id <> %s AND revoked_at IS NULL",
                        (reason, tenant_id, user_id, keep_family_id)).rowcount


def prune_expired(conn: Connection, batch: int = 100) -> None:
    """Delete up to ``batch`` families expired for more than a day (no token of theirs is valid any more)."""
    conn.execute("DELETE FROM refresh_token_families WHERE id IN (SELECT id FROM refresh_token_families "
                 "WHERE expires_at < now() - interval '1 day' LIMIT %s)", (batch,))
