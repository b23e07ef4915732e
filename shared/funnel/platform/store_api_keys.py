"""A tenant's API keys: every SQL statement over ``api_keys``, as small named functions.

Only the SHA-256 of a key is stored. The rules (who may create or revoke a key, which keys are refused,
how a key's scope caps its creator's role) stay in ``auth``, which calls these; the key's prefix is also
registered in the control DB (``store_tenants.register_api_key_prefix``). Rows are psycopg dict rows of
``API_KEY_COLUMNS``, the fields of the API's ``ApiKey`` model.
"""
from __future__ import annotations

from datetime import datetime

from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

API_KEY_COLUMNS = "id, name, prefix, scope, created_by, created_at, last_used_at, expires_at, revoked_at"


def insert_api_key(conn: Connection, *, name: str, prefix: str, hashed_key: str, scope: str, created_by: str,
                   expires_at: datetime | None) -> Row:
    return fetch_one(conn.execute(
        f"INSERT INTO api_keys (name, prefix, hashed_key, scope, created_by, expires_at) "
        f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {API_KEY_COLUMNS}",
        (name, prefix, hashed_key, scope, created_by, expires_at)))


def key_with_creator(conn: Connection, prefix: str) -> Row | None:
    """What authenticating with the key of this prefix needs: the key's ``id, hashed_key, scope, revoked_at``,
    ``expired`` (its expiry has passed), and its creator's ``user_id, email, role, disabled``."""
    return conn.execute(
        "SELECT k.id, k.hashed_key, k.scope, k.revoked_at, coalesce(k.expires_at < now(), false) AS expired, "
        "u.id AS user_id, u.email, u.role, u.disabled FROM api_keys k JOIN users u ON u.id = k.created_by "
        "WHERE k.prefix = %s", (prefix,)).fetchone()


def touch_last_used(conn: Connection, api_key_id: object) -> None:
    """``last_used_at = now()``, at most once a minute per key (a bounded write on every authenticated call)."""
    conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s AND "
                 "(last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", (api_key_id,))


def api_keys_page(conn: Connection, cursor: str | None, limit: int) -> Page:
    """API keys newest first."""
    return keyset_page(conn, table="api_keys", columns=API_KEY_COLUMNS, cursor=cursor, limit=limit)


def get_api_key(conn: Connection, api_key_id: str) -> Row | None:
    return conn.execute(f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = %s", (api_key_id,)).fetchone()


def revoke(conn: Connection, api_key_id: str) -> Row:
    """Revoke the key (an already revoked key keeps its first ``revoked_at``)."""
    return fetch_one(conn.execute(f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s "
                                  f"RETURNING {API_KEY_COLUMNS}", (api_key_id,)))
