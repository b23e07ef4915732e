"""Authentication: password login (JWT access + refresh tokens) and API keys.

API keys are ``fnl_<prefix>_<secret>`` with 32 random bytes of secret; only the
SHA-256 of the whole key is stored (tenant DB), and the prefix is registered in
the control DB so a key finds its tenant before any tenant data is read.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

from funnel import db
from funnel.db import Row
from funnel.platform import audit, ratelimit, store_api_keys, store_tenants, store_users, tokens
from funnel.platform.errors import Forbidden, NotFound, RateLimited, Unauthorized, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.passwords import verify_password
from funnel.platform.principal import SCOPE_ROLE_CAP, Principal, capped_role
from funnel.platform.tenants import directory
from funnel.platform.users import login_password_hash, record_login
from funnel.settings import get_settings

API_KEY_PREFIX = "fnl"


def _token_pair(tenant_id: str, user: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    claims = {"sub": str(user["id"]), "tid": tenant_id, "role": user["role"]}
    return {
        "access_token": tokens.sign(claims, "access", settings.access_token_ttl_seconds),
        "refresh_token": tokens.sign(claims, "refresh", settings.refresh_token_ttl_seconds),
        "token_type": "Bearer",
        "expires_in": settings.access_token_ttl_seconds,
    }


def login(email: str, password: str, tenant_slug: str | None, ip: str | None) -> dict[str, Any]:
    settings = get_settings()
    account_key, ip_key = f"login:account:{email.lower()}", f"login:ip:{ip or 'unknown'}"
    window = settings.login_window_seconds
    if (ratelimit.count(account_key, window) >= settings.login_max_attempts_per_account
            or ratelimit.count(ip_key, window) >= settings.login_max_attempts_per_ip):
        raise RateLimited("too many login attempts; try again later")
    with db.control_transaction() as conn:
        entries = store_tenants.login_entries(conn, email)
    if tenant_slug is not None:
        entries = [e for e in entries if e["slug"] == tenant_slug]
    if len(entries) > 1:
        raise ValidationFailed("this e-mail belongs to several workspaces; say which with 'tenant'",
                               tenants=[e["slug"] for e in entries])
    user = login_password_hash(entries[0]["tenant_id"], str(entries[0]["user_id"])) if entries else None
    # verify_password runs for an unknown e-mail too (against no hash), so both answers take as long.
    if not verify_password(user["password_hash"] if user else None, password) or user is None or user["disabled"]:
        ratelimit.hit(account_key, window)
        ratelimit.hit(ip_key, window)
        raise Unauthorized("wrong e-mail or password")
    tenant_id = entries[0]["tenant_id"]
    record_login(tenant_id, str(user["id"]), ip)
    return _token_pair(tenant_id, user)


def refresh(refresh_token: str) -> dict[str, Any]:
    claims = tokens.verify(refresh_token, "refresh")
    principal = _user_principal(claims["tid"], claims["sub"], None)
    return _token_pair(principal.tenant_id, {"id": principal.user_id, "role": principal.role})


def _require_active_tenant(tenant_id: str, unknown: str) -> None:
    """Only an active tenant's users and keys authenticate (a suspended, provisioning or deleted one is
    refused); ``unknown`` is the message for a tenant the directory does not know."""
    try:
        tenant = directory.get(tenant_id)
    except NotFound as exc:
        raise Unauthorized(unknown) from exc
    if tenant.status != "active":
        raise Unauthorized("tenant is not active")


def _user_principal(tenant_id: str, user_id: str, ip: str | None) -> Principal:
    _require_active_tenant(tenant_id, "unknown tenant")
    with db.tenant_transaction(tenant_id) as conn:
        user = store_users.principal_user(conn, user_id)
    if user is None or user["disabled"] or not user["active"]:
        raise Unauthorized("user not found or disabled")
    return Principal(tenant_id=tenant_id, user_id=str(user["id"]), role=user["role"], email=user["email"], ip=ip)


def authenticate_bearer(token: str, ip: str | None) -> Principal:
    claims = tokens.verify(token, "access")
    return _user_principal(claims["tid"], claims["sub"], ip)


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def authenticate_api_key(key: str, ip: str | None) -> Principal:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise Unauthorized("invalid API key")
    prefix = parts[1]
    with db.control_transaction() as conn:
        tenant_id = store_tenants.api_key_tenant(conn, prefix)
    if tenant_id is None:
        raise Unauthorized("invalid API key")
    _require_active_tenant(tenant_id, "invalid API key")
    with db.tenant_transaction(tenant_id) as conn:
        api_key = store_api_keys.key_with_creator(conn, prefix)
        if (api_key is None or not hmac.compare_digest(api_key["hashed_key"], _hash_key(key))
                or api_key["revoked_at"] is not None or api_key["expired"] or api_key["disabled"]):
            raise Unauthorized("invalid, revoked or expired API key")
        store_api_keys.touch_last_used(conn, api_key["id"])
    return Principal(tenant_id=tenant_id, user_id=str(api_key["user_id"]),
                     role=capped_role(api_key["role"], api_key["scope"]), email=api_key["email"],
                     api_key_id=str(api_key["id"]), ip=ip)


def create_api_key(principal: Principal, name: str, scope: str, expires_at: datetime | None) -> dict[str, Any]:
    """The new key's row plus ``key``, the whole key (shown once: only its hash is stored)."""
    if scope not in SCOPE_ROLE_CAP:
        raise ValidationFailed(f"scope must be one of {sorted(SCOPE_ROLE_CAP)}")
    if not principal.has_role("member"):
        raise Forbidden("viewers cannot create API keys")
    if principal.api_key_id is not None:
        raise Forbidden("API keys cannot create API keys; sign in")
    prefix = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=").replace("_", "-")
    key = f"{API_KEY_PREFIX}_{prefix}_{secret}"
    with db.tenant_transaction(principal.tenant_id) as conn:
        row = store_api_keys.insert_api_key(conn, name=name, prefix=prefix, hashed_key=_hash_key(key), scope=scope,
                                            created_by=principal.user_id, expires_at=expires_at)
        audit.record(conn, principal, "api_key.create", "api_key", row["id"], {"name": name, "scope": scope})
        # Inside the tenant transaction: if the prefix cannot be registered, the key is not created either.
        with db.control_transaction() as control:
            store_tenants.register_api_key_prefix(control, prefix, principal.tenant_id)
    return {**row, "key": key}


def list_api_keys(principal: Principal, cursor: str | None, limit: int) -> Page:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return store_api_keys.api_keys_page(conn, cursor, limit)


def revoke_api_key(principal: Principal, api_key_id: str) -> Row:
    with db.tenant_transaction(principal.tenant_id) as conn:
        row = store_api_keys.get_api_key(conn, api_key_id)
        if row is None:
            raise NotFound("API key not found")
        if str(row["created_by"]) != principal.user_id and not principal.has_role("admin"):
            raise Forbidden("only the key's creator or an admin can revoke it")
        row = store_api_keys.revoke(conn, api_key_id)
        audit.record(conn, principal, "api_key.revoke", "api_key", api_key_id)
    return row
