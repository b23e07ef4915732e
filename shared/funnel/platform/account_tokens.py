"""Signed single-use links mailed to users: e-mail verification (sign-up) and password reset.

A link carries a JWT (``funnel.platform.tokens``: signed, expiring, typed by its purpose) whose ``jti`` is
recorded in the control DB; ``redeem`` checks the signature and spends the record in one statement, so a link
works once, until it expires, and only for the purpose it was made for. A forged, expired, spent or
wrong-purpose link is the same 401 (no answer says which, or whether the account exists).

Links point at the hosted frontend (``frontend_origin``), which POSTs the token back: a mail scanner that
fetches every link in a message cannot spend it, and no API URL redirects anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from funnel import db
from funnel.platform import store_account_tokens, tokens
from funnel.platform.errors import Unauthorized
from funnel.settings import get_settings

Purpose = Literal["verify_email", "password_reset"]
# The frontend page each purpose's link opens (it POSTs the token to the API).
FRONTEND_PATHS: dict[str, str] = {"verify_email": "/verify-email", "password_reset": "/reset-password"}
INVALID = "this link is invalid, expired or already used"


@dataclass(frozen=True)
class Redeemed:
    tenant_id: str
    user_id: str


def issue(purpose: Purpose, tenant_id: str, user_id: str, ttl_seconds: int) -> str:
    """A new signed token for ``purpose``, recorded as unspent for ``ttl_seconds``."""
    jti = tokens.new_token_id()
    with db.control_transaction() as conn:
        store_account_tokens.insert_token(conn, jti, purpose, tenant_id, user_id, ttl_seconds)
        store_account_tokens.prune_expired(conn)
    return tokens.sign({"sub": user_id, "tid": tenant_id, "jti": jti}, purpose, ttl_seconds)


def link(purpose: Purpose, token: str) -> str:
    """The frontend URL a mail carries for ``token``."""
    return f"{get_settings().frontend_origin.rstrip('/')}{FRONTEND_PATHS[purpose]}?{urlencode({'token': token})}"


def redeem(token: str, purpose: Purpose) -> Redeemed:
    """Spend ``token``: the user it was issued to, or ``Unauthorized`` (one message for every reason)."""
    try:
        claims = tokens.verify(token, purpose)
    except Unauthorized as exc:
        raise Unauthorized(INVALID) from exc
    tenant_id, user_id, jti = claims.get("tid"), claims.get("sub"), claims.get("jti")
    if not (isinstance(tenant_id, str) and isinstance(user_id, str) and isinstance(jti, str)):
        raise Unauthorized(INVALID)
    with db.control_transaction() as conn:
        spent = store_account_tokens.spend(conn, jti, purpose, tenant_id, user_id)
    if spent is None:
        raise Unauthorized(INVALID)
    return Redeemed(tenant_id=tenant_id, user_id=user_id)


def void(purpose: Purpose, tenant_id: str, user_id: str) -> None:
    """Spend every outstanding link of ``purpose`` of the user (a new one is sent, or the password changed)."""
    with db.control_transaction() as conn:
        store_account_tokens.spend_all_of_user(conn, purpose, tenant_id, user_id)
