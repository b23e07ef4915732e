"""A tenant's users: every SQL statement over ``users``, as small named functions.

The rules (who may invite, change roles or disable; the last active owner; password length; invitations)
stay in ``users`` and ``auth``, which call these. Rows are psycopg dict rows of ``USER_COLUMNS``, the
fields of the API's ``User`` model.
"""
from __future__ import annotations

from typing import Any

from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

USER_COLUMNS = ("id, email, display_name, role, max_concurrency, auth_provider, last_login_at, disabled, "
                "invited_at, created_at, updated_at")
# Columns ``update_user`` may set (the service passes only these).
UPDATABLE = ("role", "disabled", "display_name", "max_concurrency")


def insert_user(conn: Connection, *, email: str, display_name: str | None, password_hash: str | None, role: str,
                max_concurrency: int) -> Row:
    """A new user; without a password hash the user is invited (``invited_at`` now). A taken e-mail raises
    psycopg's UniqueViolation."""
    return fetch_one(conn.execute(
        f"INSERT INTO users (email, display_name, password_hash, role, max_concurrency, invited_at) "
        f"VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) RETURNING {USER_COLUMNS}",
        (email, display_name, password_hash, role, max_concurrency, password_hash is None)))


def accept_invite(conn: Connection, user_id: str, password_hash: str) -> Row | None:
    """Set the invited user's password and close the invitation; None when there is no open invitation
    for an enabled user of that id."""
    return conn.execute(
        f"UPDATE users SET password_hash = %s, invited_at = NULL, updated_at = now() "
        f"WHERE id = %s AND invited_at IS NOT NULL AND NOT disabled RETURNING {USER_COLUMNS}",
        (password_hash, user_id)).fetchone()


def get_user(conn: Connection, user_id: str, *, for_update: bool = False) -> Row | None:
    return conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s{' FOR UPDATE' if for_update else ''}",
                        (user_id,)).fetchone()


def users_page(conn: Connection, cursor: str | None, limit: int) -> Page:
    """Users oldest first."""
    return keyset_page(conn, table="users", columns=USER_COLUMNS, cursor=cursor, limit=limit, newest_first=False)


def count_active_owners(conn: Connection) -> int:
    return int(fetch_one(conn.execute("SELECT count(*) AS n FROM users WHERE role = 'owner' AND NOT disabled"))["n"])


def update_user(conn: Connection, user_id: str, changes: dict[str, Any]) -> Row:
    """Set ``changes`` (keys from ``UPDATABLE``) on a user the transaction has locked."""
    assert changes and set(changes) <= set(UPDATABLE), changes  # column names go into the SQL text
    assignments = ", ".join(f"{column} = %s" for column in changes)
    return fetch_one(conn.execute(f"UPDATE users SET {assignments}, updated_at = now() WHERE id = %s "
                                  f"RETURNING {USER_COLUMNS}", (*changes.values(), user_id)))


def login_user(conn: Connection, user_id: str) -> Row | None:
    """The user with its ``password_hash`` (sign-in checks it)."""
    return conn.execute(f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = %s", (user_id,)).fetchone()


def set_password(conn: Connection, user_id: str, password_hash: str) -> Row | None:
    """Replace the password of an enabled user who has one (not a pending invitation); None when there is no such
    user."""
    return conn.execute(
        f"UPDATE users SET password_hash = %s, updated_at = now() "
        f"WHERE id = %s AND NOT disabled AND password_hash IS NOT NULL RETURNING {USER_COLUMNS}",
        (password_hash, user_id)).fetchone()


def user_by_email(conn: Connection, email: str) -> Row | None:
    return conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE email = %s", (email,)).fetchone()


def principal_user(conn: Connection, user_id: str) -> Row | None:
    """What a request's principal needs: ``id, email, role, disabled`` and ``active`` (has a password, i.e.
    is not a pending invitation)."""
    return conn.execute("SELECT id, email, role, disabled, password_hash IS NOT NULL AS active FROM users "
                        "WHERE id = %s", (user_id,)).fetchone()


def record_login(conn: Connection, user_id: str, auth_provider: str = "password") -> None:
    """A sign-in of the user, and how it signed in (``auth_provider``: ``password`` or an OpenID provider's id)."""
    conn.execute("UPDATE users SET last_login_at = now(), auth_provider = %s WHERE id = %s", (auth_provider, user_id))
