"""Users of a tenant: create, invite, list, change role, disable.

The rules live here (only owners and admins manage users, only an owner touches an owner, nobody changes
their own role or disables themselves, a tenant keeps an active owner, passwords have a minimum length);
the SQL is in ``store_users`` (and the login directory's in ``store_tenants``).
"""
from __future__ import annotations

from typing import Any

import psycopg

from funnel import db
from funnel.billing import limits
from funnel.db import Row
from funnel.platform import audit, store_sessions, store_tenants, store_users, tokens
from funnel.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.passwords import hash_password
from funnel.platform.principal import ROLE_RANK, Principal

INVITE_TTL_SECONDS = 7 * 24 * 3600
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes any length: a bound keeps one request from costing much more


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


def check_new_password(password: str, email: str, loc: list[str | int]) -> None:
    """A password a user chooses (reset, change): MIN_PASSWORD_LENGTH to MAX_PASSWORD_LENGTH characters and not
    the account's e-mail address (the first guess of anyone who knows it); else a 422 naming ``loc``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed.at(loc, f"must have at least {MIN_PASSWORD_LENGTH} characters", "string_too_short")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed.at(loc, f"must have at most {MAX_PASSWORD_LENGTH} characters", "string_too_long")
    if password.strip().lower() == email.strip().lower():
        raise ValidationFailed.at(loc, "must not be the account's e-mail address", "value_error")


def create_user(tenant_id: str, *, email: str, password: str | None, role: str, display_name: str | None,
                actor: Principal | str, max_concurrency: int = 2) -> Row:
    """A user of ``tenant_id`` who signs in with ``password``; without one the user is invited."""
    if password is not None:
        _check_password(password)
    if role not in ROLE_RANK:
        raise ValidationFailed(f"unknown role {role!r}")
    password_hash = hash_password(password) if password is not None else None
    try:
        with db.tenant_transaction(tenant_id) as conn:
            limits.take_seat(conn, tenant_id)  # the plan's seats (402), counted under a lock with this insert
            user = store_users.insert_user(conn, email=email, display_name=display_name, password_hash=password_hash,
                                           role=role, max_concurrency=max_concurrency)
            audit.record(conn, actor, "user.create", "user", user["id"], {"email": email, "role": role})
            # Inside the tenant transaction: if the directory write fails, the user is not created either.
            with db.control_transaction() as control:
                store_tenants.add_login_entry(control, email, tenant_id, user["id"])
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"a user with e-mail {email} exists") from exc
    return user


def invite_user(principal: Principal, *, email: str, role: str, display_name: str | None) -> tuple[Row, str]:
    """The invited user and the invitation token (the invitee sets a password with it: ``accept_invite``)."""
    _require_role_change_allowed(principal, None, role)
    user = create_user(principal.tenant_id, email=email, password=None, role=role, display_name=display_name,
                       actor=principal)
    token = tokens.sign({"sub": str(user["id"]), "tid": principal.tenant_id}, "invite", INVITE_TTL_SECONDS)
    return user, token


def accept_invite(token: str, password: str) -> Row:
    _check_password(password)
    claims = tokens.verify(token, "invite")
    with db.tenant_transaction(claims["tid"]) as conn:
        user = store_users.accept_invite(conn, claims["sub"], hash_password(password))
        if user is None:
            raise NotFound("invitation not found or already used")
        audit.record(conn, str(user["id"]), "user.accept_invite", "user", user["id"])
    return user


def get_user(principal: Principal, user_id: str) -> Row:
    """A user of the caller's tenant."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        user = store_users.get_user(conn, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


def current_user(principal: Principal) -> dict[str, Any]:
    """The caller's user, with their tenant and the role and API key this request acts with."""
    return {**get_user(principal, principal.user_id), "tenant_id": principal.tenant_id,
            "effective_role": principal.role, "api_key_id": principal.api_key_id}


def list_users(principal: Principal, cursor: str | None, limit: int) -> Page:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return store_users.users_page(conn, cursor, limit)


def _require_role_change_allowed(principal: Principal, current_role: str | None, new_role: str | None) -> None:
    if not principal.has_role("admin"):
        raise Forbidden("only owners and admins manage users")
    for role in (current_role, new_role):
        if role == "owner" and principal.role != "owner":
            raise Forbidden("only an owner can grant, change or disable an owner")


def update_user(principal: Principal, user_id: str, *, role: str | None = None, disabled: bool | None = None,
                display_name: str | None = None, max_concurrency: int | None = None) -> Row:
    """Change a user's role, disabled flag, display name or concurrency (None: leave as is)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        user = store_users.get_user(conn, user_id, for_update=True)
        if user is None:
            raise NotFound("user not found")
        _require_role_change_allowed(principal, user["role"], role)
        if str(user["id"]) == principal.user_id and (disabled or (role and role != user["role"])):
            raise Forbidden("you cannot disable yourself or change your own role")
        losing_owner = user["role"] == "owner" and ((role and role != "owner") or disabled)
        if losing_owner and store_users.count_active_owners(conn) <= 1:
            raise Conflict("a tenant keeps at least one active owner")
        changes = {k: v for k, v in (("role", role), ("disabled", disabled), ("display_name", display_name),
                                     ("max_concurrency", max_concurrency)) if v is not None}
        if disabled is False and user["disabled"]:
            limits.take_seat(conn, principal.tenant_id)  # enabled again: a seat of the plan (402)
        if changes:
            user = store_users.update_user(conn, user_id, changes)
            audit.record(conn, principal, "user.update", "user", user_id, changes)
            if disabled:
                # Every session of the user ends, so re-enabling them later does not revive an old token. Inside
                # the tenant transaction: if the sessions cannot be revoked, the user is not disabled either.
                with db.control_transaction() as control:
                    store_sessions.revoke_user_families(control, principal.tenant_id, user_id, "user_disabled")
    return user


def login_password_hash(tenant_id: str, user_id: str) -> Row | None:
    """The user with its ``password_hash``, for sign-in (``auth.login``)."""
    with db.tenant_transaction(tenant_id) as conn:
        return store_users.login_user(conn, user_id)


def record_login(tenant_id: str, user_id: str, ip: str | None) -> None:
    with db.tenant_transaction(tenant_id) as conn:
        store_users.record_login(conn, user_id)
        audit.record(conn, Principal(tenant_id, user_id, "viewer", ip=ip), "auth.login", "user", user_id)
