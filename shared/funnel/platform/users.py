"""Users of a tenant: create, invite, list, change role, disable."""
from __future__ import annotations

import psycopg

from funnel import db
from funnel.platform import audit, tokens
from funnel.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from funnel.platform.pagination import Page, keyset_page
from funnel.platform.passwords import hash_password
from funnel.platform.principal import ROLE_RANK, Principal

USER_COLUMNS = ("id, email, display_name, role, max_concurrency, auth_provider, last_login_at, disabled, "
                "invited_at, created_at, updated_at")
INVITE_TTL_SECONDS = 7 * 24 * 3600
MIN_PASSWORD_LENGTH = 10


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


def _add_to_login_directory(email: str, tenant_id: str, user_id) -> None:
    with db.control_transaction() as control:
        control.execute("INSERT INTO login_directory (email, tenant_id, user_id) VALUES (%s, %s, %s) "
                        "ON CONFLICT (email, tenant_id) DO UPDATE SET user_id = EXCLUDED.user_id",
                        (email, tenant_id, user_id))


def create_user(tenant_id: str, *, email: str, password: str | None, role: str, display_name: str | None,
                actor: Principal | str, max_concurrency: int = 2) -> dict:
    if password is not None:
        _check_password(password)
    if role not in ROLE_RANK:
        raise ValidationFailed(f"unknown role {role!r}")
    password_hash = hash_password(password) if password is not None else None
    try:
        with db.tenant_transaction(tenant_id) as conn:
            user = conn.execute(
                f"INSERT INTO users (email, display_name, password_hash, role, max_concurrency, invited_at) "
                f"VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) RETURNING {USER_COLUMNS}",
                (email, display_name, password_hash, role, max_concurrency, password is None)).fetchone()
            audit.record(conn, actor, "user.create", "user", user["id"], {"email": email, "role": role})
            # Inside the tenant transaction: if the directory write fails, the user is not created either.
            _add_to_login_directory(email, tenant_id, user["id"])
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"a user with e-mail {email} exists") from exc
    return user


def invite_user(principal: Principal, *, email: str, role: str, display_name: str | None) -> tuple[dict, str]:
    _require_role_change_allowed(principal, None, role)
    user = create_user(principal.tenant_id, email=email, password=None, role=role, display_name=display_name,
                       actor=principal)
    token = tokens.sign({"sub": str(user["id"]), "tid": principal.tenant_id}, "invite", INVITE_TTL_SECONDS)
    return user, token


def accept_invite(token: str, password: str) -> dict:
    _check_password(password)
    claims = tokens.verify(token, "invite")
    with db.tenant_transaction(claims["tid"]) as conn:
        user = conn.execute(
            f"UPDATE users SET password_hash = %s, invited_at = NULL, updated_at = now() "
            f"WHERE id = %s AND invited_at IS NOT NULL AND NOT disabled RETURNING {USER_COLUMNS}",
            (hash_password(password), claims["sub"])).fetchone()
        if user is None:
            raise NotFound("invitation not found or already used")
        audit.record(conn, str(user["id"]), "user.accept_invite", "user", user["id"])
    return user


def get_user(conn, user_id: str) -> dict:
    user = conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
    if user is None:
        raise NotFound("user not found")
    return user


def list_users(principal: Principal, cursor: str | None, limit: int) -> Page:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return keyset_page(conn, table="users", columns=USER_COLUMNS, cursor=cursor, limit=limit, newest_first=False)


def _require_role_change_allowed(principal: Principal, current_role: str | None, new_role: str | None) -> None:
    if not principal.has_role("admin"):
        raise Forbidden("only owners and admins manage users")
    for role in (current_role, new_role):
        if role == "owner" and principal.role != "owner":
            raise Forbidden("only an owner can grant, change or disable an owner")


def update_user(principal: Principal, user_id: str, *, role: str | None = None, disabled: bool | None = None,
                display_name: str | None = None, max_concurrency: int | None = None) -> dict:
    with db.tenant_transaction(principal.tenant_id) as conn:
        user = conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s FOR UPDATE", (user_id,)).fetchone()
        if user is None:
            raise NotFound("user not found")
        _require_role_change_allowed(principal, user["role"], role)
        if str(user["id"]) == principal.user_id and (disabled or (role and role != user["role"])):
            raise Forbidden("you cannot disable yourself or change your own role")
        losing_owner = user["role"] == "owner" and ((role and role != "owner") or disabled)
        if losing_owner:
            owners = conn.execute("SELECT count(*) AS n FROM users WHERE role = 'owner' AND NOT disabled").fetchone()
            if owners["n"] <= 1:
                raise Conflict("a tenant keeps at least one active owner")
        changes = {k: v for k, v in (("role", role), ("disabled", disabled), ("display_name", display_name),
                                     ("max_concurrency", max_concurrency)) if v is not None}
        if changes:
            assignments = ", ".join(f"{column} = %s" for column in changes)
            user = conn.execute(f"UPDATE users SET {assignments}, updated_at = now() WHERE id = %s "
                                f"RETURNING {USER_COLUMNS}", (*changes.values(), user_id)).fetchone()
            audit.record(conn, principal, "user.update", "user", user_id, changes)
    return user


def login_password_hash(tenant_id: str, user_id: str) -> dict | None:
    with db.tenant_transaction(tenant_id) as conn:
        return conn.execute(f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = %s",
                            (user_id,)).fetchone()


def record_login(tenant_id: str, user_id: str, ip: str | None) -> None:
    with db.tenant_transaction(tenant_id) as conn:
        conn.execute("UPDATE users SET last_login_at = now() WHERE id = %s", (user_id,))
        audit.record(conn, Principal(tenant_id, user_id, "viewer", ip=ip), "auth.login", "user", user_id)

