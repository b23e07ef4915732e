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

from funnel import db
from funnel.db import Row
from funnel.platform import store_requests
from funnel.platform.errors import Conflict, ValidationFailed
from funnel.platform.principal import Principal

MAX_KEY_LENGTH = 255
KEEP_HOURS = 24


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
        store_requests.delete_expired_keys(conn, principal.actor, KEEP_HOURS)
        # Twice at most: the holder of the key may release it (a server error) between our claim and our read.
        row: Row | None = None
        for _attempt in range(2):
            if store_requests.insert_key(conn, principal.actor, key, method, path, digest):
                return None
            row = store_requests.select_key(conn, principal.actor, key)
            if row is not None:
                break
    if row is None:
        raise Conflict("a request with this Idempotency-Key is still being processed")
    if row["request_hash"] != digest:
        raise ValidationFailed("this Idempotency-Key was used with a different request")
    if row["status_code"] is None:
        raise Conflict("a request with this Idempotency-Key is still being processed")
    return StoredResponse(row["status_code"], row["response_body"], row["content_type"])


def complete(principal: Principal, key: str, status_code: int, body: bytes, content_type: str) -> None:
    """Store the response for replays; a server error releases the key instead, so the client may retry."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        if status_code >= 500:
            store_requests.delete_key(conn, principal.actor, key)
        else:
            store_requests.store_response(conn, principal.actor, key, status_code,
                                          body.decode("utf-8", errors="replace"), content_type)
