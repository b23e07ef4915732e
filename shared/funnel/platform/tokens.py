"""Signed JWTs (HS256) with a key id, so the signing key can rotate.

The key lives in Secrets Manager as ``{"kid": "...", "secret": "..."}``: tokens
are signed with AWSCURRENT and verified against AWSCURRENT or AWSPREVIOUS by
``kid``, so a rotation does not log everybody out.
"""
from __future__ import annotations

import time
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from funnel.platform.errors import Unauthorized
from funnel.platform.secrets import get_secret
from funnel.settings import get_settings

if TYPE_CHECKING:
    from jwt import ExpiredSignatureError, PyJWTError
    from jwt.types import Options

ISSUER = "funnel"
ALGORITHM = "HS256"


class _PyJwt(Protocol):
    """The part of the ``jwt`` module (PyJWT) used here. A module is not a type, but mypy checks that the
    module ``_jwt`` returns matches this protocol, so the calls below are checked against PyJWT's own hints.
    The exception classes are read-only properties named as the module names them."""

    @property
    def ExpiredSignatureError(self) -> type[ExpiredSignatureError]: ...

    @property
    def PyJWTError(self) -> type[PyJWTError]: ...

    def encode(self, payload: dict[str, Any], key: str, algorithm: str | None = ...,
               headers: dict[str, Any] | None = ...) -> str: ...

    def decode(self, jwt: str, key: str = ..., algorithms: list[str] | None = ..., *,
               issuer: str | None = ..., options: Options | None = ...) -> dict[str, Any]: ...

    def get_unverified_header(self, jwt: str) -> dict[str, Any]: ...


@lru_cache(maxsize=1)
def _jwt() -> _PyJwt:
    """PyJWT, imported on first use: it loads the cryptography backend (~40 ms of cold start) that a
    request with an API key, or a route without authentication, never needs."""
    import jwt

    return jwt


def _keys() -> dict[str, str]:
    secret_id = get_settings().jwt_secret_id
    keys = {}
    for stage in ("AWSPREVIOUS", "AWSCURRENT"):
        value = get_secret(secret_id, stage)
        if isinstance(value, dict) and value.get("kid") and value.get("secret"):
            keys[value["kid"]] = value["secret"]
    if not keys:
        raise RuntimeError(f"secret {secret_id} holds no signing key")
    return keys


def new_token_id() -> str:
    return uuid.uuid4().hex


def sign(claims: dict, token_type: str, ttl_seconds: int) -> str:
    """A token of ``claims`` (a ``jti`` among them is kept: a refresh token's is stored to rotate it)."""
    current = get_secret(get_settings().jwt_secret_id)
    now = int(time.time())
    payload = {**claims, "typ": token_type, "iss": ISSUER, "iat": now, "exp": now + ttl_seconds,
               "jti": claims.get("jti") or new_token_id()}
    return _jwt().encode(payload, current["secret"], algorithm=ALGORITHM, headers={"kid": current["kid"]})


def verify(token: str, token_type: str) -> dict:
    jwt = _jwt()
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = _keys().get(kid or "")
        if key is None:
            raise Unauthorized("unknown signing key")
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["exp", "iat", "iss", "typ"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid token") from exc
    if claims.get("typ") != token_type:
        raise Unauthorized("wrong token type")
    return claims
