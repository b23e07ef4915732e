"""Idempotency-Key for creating requests (POST).

The first request with a key claims it (a row with no response yet) in its own
committed transaction; the response is stored when it is known. A retry with
the same key and the same request gets the stored response again; the same key
with a different request is refused (422); a retry while the first is still
running gets 409. Server errors release the key so the client may retry.
Keys are kept for 24 hours.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg

from funnel import db
from funnel.platform.errors import Conflict, ValidationFailed
from funnel.platform.principal import Principal

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: str
    content_type: str


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def claim(principal: Principal, key: str, method: str, path: str, body: bytes) -> StoredResponse | None:
    """Claim the key; return the stored response when this request was already answered."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters")
    digest = request_hash(method, path, body)
    with db.tenant_transaction(principal.tenant_id) as conn:
        conn.execute("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours' "
                     "AND principal = %s", (principal.actor,))
        try:
            with conn.transaction():
                conn.execute("INSERT INTO idempotency_keys (principal, key, method, path, request_hash) "
                             "VALUES (%s, %s, %s, %s, %s)", (principal.actor, key, method, path, digest))
            return None
        except psycopg.errors.UniqueViolation:
            pass
        row = conn.execute("SELECT request_hash, status_code, response_body, content_type FROM idempotency_keys "
                           "WHERE principal = %s AND key = %s", (principal.actor, key)).fetchone()
    if row["request_hash"] != digest:
        raise ValidationFailed("this Idempotency-Key was used with a different request")
    if row["status_code"] is None:
        raise Conflict("a request with this Idempotency-Key is still being processed")
    return StoredResponse(row["status_code"], row["response_body"], row["content_type"])


def complete(principal: Principal, key: str, status_code: int, body: bytes, content_type: str) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        if status_code >= 500:
            conn.execute("DELETE FROM idempotency_keys WHERE principal = %s AND key = %s", (principal.actor, key))
        else:
            conn.execute("UPDATE idempotency_keys SET status_code = %s, response_body = %s, content_type = %s "
                         "WHERE principal = %s AND key = %s",
                         (status_code, body.decode("utf-8", errors="replace"), content_type, principal.actor, key))
