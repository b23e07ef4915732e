"""Signed tracking tokens: ``<payload>.<signature>``, both base64url.

The payload carries the tenant and the message (and, for clicks, the target
URL; for a reminder, its round, so an event counts for the mail it came from
even after a later round went out), so the tracking function routes without a lookup and a click can only
redirect where Funnel signed it to (no open redirect). HMAC-SHA256 with the
tracking key from Secrets Manager, truncated to 128 bits. Standard library
only: the tracking function's cold start counts.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import NamedTuple

KINDS = ("o", "c", "u", "a")  # open pixel, click, unsubscribe, attachment download


class InvalidToken(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Token(NamedTuple):
    tenant_id: str
    message_id: str
    url: str | None
    reminder_round: int


def sign(key: bytes, kind: str, tenant_id: str, message_id: str, url: str | None = None,
         reminder_round: int = 0) -> str:
    """``[kind, tenant, message]``, then the url (or null) and the round only when there is one: the first
    mail's tokens stay short."""
    values: list = [kind, tenant_id, message_id]
    if url or reminder_round:
        values.append(url or None)
    if reminder_round:
        values.append(reminder_round)
    payload = _b64(json.dumps(values, separators=(",", ":")).encode())
    return f"{payload}.{_b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16])}"


def verify(key: bytes, token: str, kind: str) -> Token:
    """The tenant, message, url and reminder round of a valid token of ``kind``; InvalidToken otherwise."""
    try:
        payload, signature = token.split(".", 1)
        expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16])
        if not hmac.compare_digest(expected, signature):
            raise InvalidToken("bad signature")
        values = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken(str(exc)) from exc
    if not isinstance(values, list) or len(values) not in (3, 4, 5) or values[0] != kind:
        raise InvalidToken("wrong kind")
    reminder_round = values[4] if len(values) == 5 else 0
    if not isinstance(reminder_round, int) or reminder_round < 0:
        raise InvalidToken("bad round")
    return Token(values[1], values[2], values[3] if len(values) >= 4 else None, reminder_round)


def tracking_key() -> bytes:
    from funnel.platform.secrets import get_secret
    from funnel.settings import get_settings

    value = get_secret(get_settings().tracking_secret_id)
    return str(value["secret"] if isinstance(value, dict) else value).encode()
