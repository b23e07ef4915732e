"""Sign-ins with an OpenID provider under way: every SQL statement over the control DB's ``oidc_logins``.

A row per started sign-in, keyed by the SHA-256 of its ``state`` (the state itself travels through the
browser and is never stored). The rules (expiry, single use) stay in ``funnel.platform.oidc``.
"""
from __future__ import annotations

from funnel.db import Connection, Row, fetch_one


def insert_login(conn: Connection, state_hash: str, provider: str, nonce: str, code_verifier: str,
                 redirect_uri: str, ttl_seconds: int) -> Row:
    """The new sign-in; answers its ``expires_at``."""
    return fetch_one(conn.execute(
        "INSERT INTO oidc_logins (state_hash, provider, nonce, code_verifier, redirect_uri, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s)) RETURNING expires_at",
        (state_hash, provider, nonce, code_verifier, redirect_uri, ttl_seconds)))


def spend(conn: Connection, state_hash: str, provider: str) -> Row | None:
    """Remove the sign-in of ``state_hash`` with ``provider`` and answer it (``nonce, code_verifier,
    redirect_uri`` and whether it was still ``live``); None when it is unknown, another provider's or already
    spent. One statement: of two callbacks with the same state only one gets it."""
    return conn.execute(
        "DELETE FROM oidc_logins WHERE state_hash = %s AND provider = %s "
        "RETURNING nonce, code_verifier, redirect_uri, expires_at > now() AS live",
        (state_hash, provider)).fetchone()


def prune_expired(conn: Connection, limit: int = 500) -> None:
    """Forget a few sign-ins that were never finished (expired: they can no longer be)."""
    conn.execute("DELETE FROM oidc_logins WHERE state_hash IN (SELECT state_hash FROM oidc_logins "
                 "WHERE expires_at < now() LIMIT %s)", (limit,))
