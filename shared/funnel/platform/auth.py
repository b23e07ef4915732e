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
from datetime import UTC, datetime
from typing import Any

from funnel import db
from funnel.db import Row
from funnel.platform import audit, ratelimit, store_api_keys, store_sessions, store_tenants, store_users, tokens
from funnel.platform.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.passwords import verify_password
from funnel.platform.principal import SCOPE_ROLE_CAP, Principal, capped_role
from funnel.platform.tenants import directory
from funnel.platform.users import login_password_hash, record_login
from funnel.settings import get_settings

API_KEY_PREFIX = "fnl"


def _token_pair(tenant_id: str, user: dict[str, Any], family_id: str, refresh_jti: str) -> dict[str, Any]:
    """Both tokens name the session's family (``fam``): revoking it ends them; the refresh token's ``jti`` is the
    family's current one."""
    settings = get_settings()
    claims = {"sub": str(user["id"]), "tid": tenant_id, "role": user["role"], "fam": family_id}
    return {
        "access_token": tokens.sign(claims, "access", settings.access_token_ttl_seconds),
        "refresh_token": tokens.sign({**claims, "jti": refresh_jti}, "refresh", settings.refresh_token_ttl_seconds),
        "token_type": "Bearer",
        "expires_in": settings.access_token_ttl_seconds,
    }


def start_session(tenant_id: str, user: dict[str, Any]) -> dict[str, Any]:
    """A new session (refresh-token family) of ``user`` (``id``, ``role``) and its token pair: every way of
    signing in (a password, an OpenID provider) ends here."""
    jti = tokens.new_token_id()
    with db.control_transaction() as conn:
        family_id = store_sessions.insert_family(conn, tenant_id, str(user["id"]), jti,
                                                 get_settings().refresh_token_ttl_seconds)
        store_sessions.prune_expired(conn)
    return _token_pair(tenant_id, user, family_id, jti)


def login(email: str, password: str, tenant_slug: str | None, ip: str | None) -> dict[str, Any]:
    """Tokens for the one workspace of ``email`` where ``password`` is right (``tenant_slug`` narrows the search).

    Every answer but success is the same 401, whatever is wrong: an unknown e-mail, a wrong password, a disabled
    user, a workspace the e-mail is not in. The password is verified against every candidate workspace's user (a
    dummy hash when there is none), so no answer comes without a verification. Only when the password is right
    for several workspaces and none is named does the answer (422) list them. Each attempt is counted against
    the account's and the IP's windows before the password is checked (``ratelimit.reserve``: concurrent
    attempts cannot overtake the limit); a sign-in that succeeds is taken back, a 401 or a 422 stays counted.
    """
    reservation = ratelimit.reserve(_sign_in_windows(email, ip), get_settings().login_window_seconds,
                                    "too many login attempts; try again later")
    with db.control_transaction() as conn:
        entries = store_tenants.login_entries(conn, email)
    if tenant_slug is not None:
        entries = [e for e in entries if e["slug"] == tenant_slug]
    matches = []
    candidates: list[Row | None] = [*entries] or [None]
    for entry in candidates:
        user = login_password_hash(entry["tenant_id"], str(entry["user_id"])) if entry else None
        # verify_password runs for an unknown e-mail too (against a dummy hash), so no answer is quicker.
        right = verify_password(user["password_hash"] if user else None, password)
        if right and entry and user and not user["disabled"]:
            matches.append((entry["tenant_id"], entry["slug"], user))
    if not matches:
        raise Unauthorized("wrong e-mail or password")
    if len(matches) > 1:
        raise choose_workspace("the password is right for several workspaces of this e-mail",
                               [slug for _, slug, _ in matches])
    ratelimit.release(reservation)
    tenant_id, _, user = matches[0]
    record_login(tenant_id, str(user["id"]), ip)
    return start_session(tenant_id, user)


def choose_workspace(why: str, slugs: list[str]) -> ValidationFailed:
    """The 422 of a sign-in that fits several workspaces and names none: ``tenants`` lists their slugs and
    ``errors`` names ``body.tenant`` (the same answer whichever way the user signs in)."""
    return ValidationFailed(f"{why}; say which with 'tenant'", tenants=slugs,
                            errors=[{"loc": ["body", "tenant"], "msg": "name one of `tenants`", "type": "missing"}])


def _sign_in_windows(email: str, ip: str | None) -> dict[str, int]:
    """The attempt windows every password check counts against: the account's and the client address's."""
    settings = get_settings()
    return {f"login:account:{email.lower()}": settings.login_max_attempts_per_account,
            f"login:ip:{ip or 'unknown'}": settings.login_max_attempts_per_ip}


def check_current_password(principal: Principal, password_hash: str | None, password: str, field: str,
                           message: str) -> None:
    """A signed-in user's current password, checked as a sign-in checks it: counted against the same account and
    address windows (a stolen session guesses it no faster than a sign-in could), a right one taken back; a wrong
    one is a 422 naming ``body.<field>``."""
    reservation = ratelimit.reserve(_sign_in_windows(principal.email, principal.ip),
                                    get_settings().login_window_seconds, "too many password attempts; try again later")
    if not verify_password(password_hash, password):
        raise ValidationFailed.at(["body", field], message)
    ratelimit.release(reservation)


def refresh(refresh_token: str) -> dict[str, Any]:
    """New tokens for a session, rotating its refresh token: the one presented is spent. Presenting a spent one
    again (a replay: it was copied) revokes the whole family, so neither copy goes on."""
    claims = tokens.verify(refresh_token, "refresh")
    family_id, jti, tenant_id, user_id = claims.get("fam"), claims.get("jti"), claims["tid"], claims["sub"]
    if not family_id or not jti:
        raise Unauthorized("this refresh token is no longer accepted; sign in again")
    principal = _user_principal(tenant_id, user_id, None)
    new_jti = tokens.new_token_id()
    with db.control_transaction() as conn:
        rotated = store_sessions.rotate(conn, family_id, tenant_id, user_id, jti, new_jti,
                                        get_settings().refresh_token_ttl_seconds)
        if not rotated:
            store_sessions.revoke_family(conn, family_id, tenant_id, user_id, "reuse")
    if not rotated:
        raise Unauthorized("refresh token revoked or already used; sign in again")
    return _token_pair(tenant_id, {"id": principal.user_id, "role": principal.role}, family_id, new_jti)


def logout(refresh_token: str, everywhere: bool) -> None:
    """End the session of ``refresh_token`` (its family: every refresh and access token of that sign-in), or
    with ``everywhere`` every session of its user. Ending a session already ended is no error; ending them all
    needs the session's current refresh token (a spent or revoked one proves nothing any more)."""
    claims = tokens.verify(refresh_token, "refresh")
    family_id, jti, tenant_id, user_id = claims.get("fam"), claims.get("jti"), claims["tid"], claims["sub"]
    if not family_id or not jti:
        raise Unauthorized("this refresh token is no longer accepted; sign in again")
    with db.control_transaction() as conn:
        if not everywhere:
            store_sessions.revoke_family(conn, family_id, tenant_id, user_id, "logout")
            return
        if not store_sessions.is_current(conn, family_id, tenant_id, user_id, jti):
            raise Unauthorized("refresh token revoked or already used; sign in again")
        store_sessions.revoke_user_families(conn, tenant_id, user_id, "logout_everywhere")


def _require_active_tenant(tenant_id: str, unknown: str) -> None:
    """Only an active tenant's users and keys authenticate (a suspended, provisioning or deleted one is
    refused); ``unknown`` is the message for a tenant the directory does not know."""
    try:
        tenant = directory.get(tenant_id)
    except NotFound as exc:
        raise Unauthorized(unknown) from exc
    if tenant.status != "active":
        raise Unauthorized("tenant is not active")


def _user_principal(tenant_id: str, user_id: str, ip: str | None, session_id: str | None = None) -> Principal:
    _require_active_tenant(tenant_id, "unknown tenant")
    with db.tenant_transaction(tenant_id) as conn:
        user = store_users.principal_user(conn, user_id)
    if user is None or user["disabled"] or not user["active"]:
        raise Unauthorized("user not found or disabled")
    return Principal(tenant_id=tenant_id, user_id=str(user["id"]), role=user["role"], email=user["email"], ip=ip,
                     session_id=session_id)


def authenticate_bearer(token: str, ip: str | None) -> Principal:
    """The access token's user, while its session (family) is live: logging out, a replayed refresh token or
    disabling the user ends it, and re-enabling the user does not bring it back."""
    claims = tokens.verify(token, "access")
    family_id = claims.get("fam")
    if not family_id:
        raise Unauthorized("this token is no longer accepted; sign in again")
    with db.control_transaction() as conn:
        live = store_sessions.is_live(conn, family_id, claims["tid"], claims["sub"])
    if not live:
        raise Unauthorized("session ended; sign in again")
    return _user_principal(claims["tid"], claims["sub"], ip, session_id=family_id)


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
    if expires_at is not None:
        # Without an offset the time is UTC (as the database would have read it).
        expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
        if expires_at <= datetime.now(UTC):
            raise ValidationFailed("expires_at must be in the future", errors=[
                {"loc": ["body", "expires_at"], "msg": "must be in the future", "type": "value_error"}])
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
