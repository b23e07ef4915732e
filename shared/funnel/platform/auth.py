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

from funnel import db
from funnel.platform import audit, ratelimit, tokens
from funnel.platform.errors import Forbidden, NotFound, RateLimited, Unauthorized, ValidationFailed
from funnel.platform.pagination import Page, keyset_page
from funnel.platform.passwords import verify_password
from funnel.platform.principal import SCOPE_ROLE_CAP, Principal, capped_role
from funnel.platform.tenants import directory
from funnel.platform.users import login_password_hash, record_login
from funnel.settings import get_settings

API_KEY_PREFIX = "fnl"
API_KEY_COLUMNS = "id, name, prefix, scope, created_by, created_at, last_used_at, expires_at, revoked_at"
PRINCIPAL_QUERY = "SELECT id, email, role, disabled, password_hash IS NOT NULL AS active FROM users WHERE id = %s"


def _token_pair(tenant_id: str, user: dict) -> dict:
    settings = get_settings()
    claims = {"sub": str(user["id"]), "tid": tenant_id, "role": user["role"]}
    return {
        "access_token": tokens.sign(claims, "access", settings.access_token_ttl_seconds),
        "refresh_token": tokens.sign(claims, "refresh", settings.refresh_token_ttl_seconds),
        "token_type": "Bearer",
        "expires_in": settings.access_token_ttl_seconds,
    }


def login(email: str, password: str, tenant_slug: str | None, ip: str | None) -> dict:
    settings = get_settings()
    account_key, ip_key = f"login:account:{email.lower()}", f"login:ip:{ip or 'unknown'}"
    window = settings.login_window_seconds
    if (ratelimit.count(account_key, window) >= settings.login_max_attempts_per_account
            or ratelimit.count(ip_key, window) >= settings.login_max_attempts_per_ip):
        raise RateLimited("too many login attempts; try again later")
    with db.control_transaction() as conn:
        entries = conn.execute(
            "SELECT d.tenant_id, d.user_id, t.slug FROM login_directory d JOIN tenants t ON t.id = d.tenant_id "
            "WHERE d.email = %s AND t.status = 'active' ORDER BY t.slug", (email,)).fetchall()
    if tenant_slug is not None:
        entries = [e for e in entries if e["slug"] == tenant_slug]
    if len(entries) > 1:
        raise ValidationFailed("this e-mail belongs to several workspaces; say which with 'tenant'",
                               tenants=[e["slug"] for e in entries])
    user = login_password_hash(entries[0]["tenant_id"], str(entries[0]["user_id"])) if entries else None
    if not verify_password(user["password_hash"] if user else None, password) or user["disabled"]:
        ratelimit.hit(account_key, window)
        ratelimit.hit(ip_key, window)
        raise Unauthorized("wrong e-mail or password")
    tenant_id = entries[0]["tenant_id"]
    record_login(tenant_id, str(user["id"]), ip)
    return _token_pair(tenant_id, user)


def refresh(refresh_token: str) -> dict:
    claims = tokens.verify(refresh_token, "refresh")
    principal = _user_principal(claims["tid"], claims["sub"], None)
    return _token_pair(principal.tenant_id, {"id": principal.user_id, "role": principal.role})


def _user_principal(tenant_id: str, user_id: str, ip: str | None) -> Principal:
    try:
        tenant = directory.get(tenant_id)
    except NotFound as exc:
        raise Unauthorized("unknown tenant") from exc
    if tenant.status != "active":
        raise Unauthorized("tenant is not active")
    with db.tenant_transaction(tenant_id) as conn:
        user = conn.execute(PRINCIPAL_QUERY, (user_id,)).fetchone()
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
        row = conn.execute("SELECT tenant_id FROM api_key_prefixes WHERE prefix = %s", (prefix,)).fetchone()
    if row is None:
        raise Unauthorized("invalid API key")
    tenant_id = row["tenant_id"]
    try:
        tenant = directory.get(tenant_id)
    except NotFound as exc:
        raise Unauthorized("invalid API key") from exc
    if tenant.status != "active":
        raise Unauthorized("tenant is not active")
    with db.tenant_transaction(tenant_id) as conn:
        api_key = conn.execute(
            "SELECT k.id, k.hashed_key, k.scope, k.revoked_at, k.expires_at < now() AS expired, "
            "u.id AS user_id, u.email, u.role, u.disabled FROM api_keys k JOIN users u ON u.id = k.created_by "
            "WHERE k.prefix = %s", (prefix,)).fetchone()
        if (api_key is None or not hmac.compare_digest(api_key["hashed_key"], _hash_key(key))
                or api_key["revoked_at"] is not None or api_key["expired"] or api_key["disabled"]):
            raise Unauthorized("invalid, revoked or expired API key")
        # Bounded write: at most one last_used_at update per key per minute.
        conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s AND "
                     "(last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", (api_key["id"],))
    return Principal(tenant_id=tenant_id, user_id=str(api_key["user_id"]),
                     role=capped_role(api_key["role"], api_key["scope"]), email=api_key["email"],
                     api_key_id=str(api_key["id"]), ip=ip)


def create_api_key(principal: Principal, name: str, scope: str, expires_at: datetime | None) -> dict:
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
        row = conn.execute(
            f"INSERT INTO api_keys (name, prefix, hashed_key, scope, created_by, expires_at) "
            f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {API_KEY_COLUMNS}",
            (name, prefix, _hash_key(key), scope, principal.user_id, expires_at)).fetchone()
        audit.record(conn, principal, "api_key.create", "api_key", row["id"], {"name": name, "scope": scope})
        with db.control_transaction() as control:
            control.execute("INSERT INTO api_key_prefixes (prefix, tenant_id) VALUES (%s, %s)",
                            (prefix, principal.tenant_id))
    return {**row, "key": key}


def list_api_keys(principal: Principal, cursor: str | None, limit: int) -> Page:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return keyset_page(conn, table="api_keys", columns=API_KEY_COLUMNS, cursor=cursor, limit=limit)


def revoke_api_key(principal: Principal, api_key_id: str) -> dict:
    with db.tenant_transaction(principal.tenant_id) as conn:
        row = conn.execute(f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = %s", (api_key_id,)).fetchone()
        if row is None:
            raise NotFound("API key not found")
        if str(row["created_by"]) != principal.user_id and not principal.has_role("admin"):
            raise Forbidden("only the key's creator or an admin can revoke it")
        row = conn.execute(f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s "
                           f"RETURNING {API_KEY_COLUMNS}", (api_key_id,)).fetchone()
        audit.record(conn, principal, "api_key.revoke", "api_key", api_key_id)
    return row
