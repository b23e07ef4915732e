"""The access rules of ``auth`` and ``users`` over an in-memory fake of the store functions they call
(``store_tenants``, ``store_users``, ``store_api_keys``), the tenant directory and the audit log:

- an API key authenticates only when its hash matches and it is neither revoked nor expired, its creator is
  enabled and its tenant active; its role is capped by its scope, and its last use is recorded;
- only members and above create keys (never with a key), only the creator or an admin revokes one;
- sign-in: a wrong password or an unknown e-mail is the same 401 and counts against the rate limits (reserved
  before the password is checked, taken back on success); only a password right for several workspaces asks
  which; a bearer token of a disabled or invited user, of a tenant that is not active, or of an ended session
  is refused; refresh tokens rotate and a replayed one ends its session; disabling a user ends their sessions;
- user management: only owners and admins manage users, only an owner touches an owner, nobody disables or
  re-roles themselves, and the last active owner stays.
No database: the fake holds the rows in dicts.
"""
from __future__ import annotations

import hashlib
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from funnel import db
from funnel.db import Tenant
from funnel.platform import auth, ratelimit, users
from funnel.platform.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.passwords import hash_password
from funnel.platform.principal import Principal

TENANT = "tenant-a"
PASSWORD = "correct horse battery"


class FakeStores:
    """Stands in for ``store_tenants``, ``store_users``, ``store_api_keys`` and ``store_sessions`` (their function
    names do not overlap), over ``users`` (id -> row), ``api_keys`` (prefix -> row), ``families`` (id -> row)
    and the control DB's lookups."""

    def __init__(self) -> None:
        self.users: dict[str, dict] = {}
        self.families: dict[str, dict] = {}
        self.api_keys: dict[str, dict] = {}
        self.prefixes: dict[str, str] = {}
        self.login_directory: list[dict] = []  # tenant_id, user_id, slug, email
        self.touched: list[str] = []
        self.logins: list[str] = []

    # ---- users
    def add_user(self, role: str, *, email: str | None = None, disabled: bool = False, invited: bool = False,
                 password: str | None = PASSWORD) -> dict:
        user_id = str(uuid.uuid4())
        email = email or f"{role}-{user_id[:4]}@example.com"
        self.users[user_id] = {"id": user_id, "email": email, "display_name": None, "role": role,
                               "max_concurrency": 2, "auth_provider": "password", "last_login_at": None,
                               "disabled": disabled, "invited_at": datetime.now(UTC) if invited else None,
                               "password_hash": None if invited or password is None else hash_password(password)}
        return self.users[user_id]

    def _public(self, row: dict) -> dict:
        return {k: v for k, v in row.items() if k != "password_hash"}

    def get_user(self, conn, user_id, *, for_update=False):
        row = self.users.get(user_id)
        return self._public(row) if row else None

    def principal_user(self, conn, user_id):
        row = self.users.get(user_id)
        return None if row is None else {"id": row["id"], "email": row["email"], "role": row["role"],
                                         "disabled": row["disabled"], "active": row["password_hash"] is not None}

    def login_user(self, conn, user_id):
        row = self.users.get(user_id)
        return dict(row) if row else None

    def record_login(self, conn, user_id):
        self.logins.append(user_id)

    def count_active_owners(self, conn):
        return sum(1 for u in self.users.values() if u["role"] == "owner" and not u["disabled"])

    def update_user(self, conn, user_id, changes):
        self.users[user_id].update(changes)
        return self._public(self.users[user_id])

    def users_page(self, conn, cursor, limit):
        return Page(items=[self._public(u) for u in self.users.values()][:limit], next_cursor=None)

    # ---- the control DB
    def login_entries(self, conn, email):
        return [e for e in self.login_directory if e["email"] == email]

    def api_key_tenant(self, conn, prefix):
        return self.prefixes.get(prefix)

    def register_api_key_prefix(self, conn, prefix, tenant_id):
        self.prefixes[prefix] = tenant_id

    # ---- API keys
    def insert_api_key(self, conn, *, name, prefix, hashed_key, scope, created_by, expires_at):
        self.api_keys[prefix] = {"id": str(uuid.uuid4()), "name": name, "prefix": prefix, "hashed_key": hashed_key,
                                 "scope": scope, "created_by": created_by, "created_at": datetime.now(UTC),
                                 "last_used_at": None, "expires_at": expires_at, "revoked_at": None}
        return self._key_row(self.api_keys[prefix])

    def _key_row(self, key: dict) -> dict:
        return {k: v for k, v in key.items() if k != "hashed_key"}

    def key_with_creator(self, conn, prefix):
        key = self.api_keys.get(prefix)
        if key is None:
            return None
        creator = self.users[key["created_by"]]
        return {"id": key["id"], "hashed_key": key["hashed_key"], "scope": key["scope"],
                "revoked_at": key["revoked_at"],
                "expired": key["expires_at"] is not None and key["expires_at"] < datetime.now(UTC),
                "user_id": creator["id"], "email": creator["email"], "role": creator["role"],
                "disabled": creator["disabled"]}

    def touch_last_used(self, conn, api_key_id):
        self.touched.append(api_key_id)

    # ---- sessions (refresh-token families)
    def insert_family(self, conn, tenant_id, user_id, jti, ttl_seconds):
        family_id = str(uuid.uuid4())
        self.families[family_id] = {"tenant_id": tenant_id, "user_id": user_id, "jti": jti, "revoked": None}
        return family_id

    def _family(self, family_id, tenant_id, user_id):
        family = self.families.get(family_id)
        return family if family and (family["tenant_id"], family["user_id"]) == (tenant_id, user_id) else None

    def rotate(self, conn, family_id, tenant_id, user_id, jti, new_jti, ttl_seconds):
        if not self.is_current(conn, family_id, tenant_id, user_id, jti):
            return False
        self.families[family_id]["jti"] = new_jti
        return True

    def is_current(self, conn, family_id, tenant_id, user_id, jti):
        family = self._family(family_id, tenant_id, user_id)
        return bool(family and family["revoked"] is None and family["jti"] == jti)

    def is_live(self, conn, family_id, tenant_id, user_id):
        family = self._family(family_id, tenant_id, user_id)
        return bool(family and family["revoked"] is None)

    def revoke_family(self, conn, family_id, tenant_id, user_id, reason):
        family = self._family(family_id, tenant_id, user_id)
        if family and family["revoked"] is None:
            family["revoked"] = reason

    def revoke_user_families(self, conn, tenant_id, user_id, reason):
        live = [f for f in self.families.values() if (f["tenant_id"], f["user_id"]) == (tenant_id, user_id)
                and f["revoked"] is None]
        for family in live:
            family["revoked"] = reason
        return len(live)

    def prune_expired(self, conn):
        pass

    def _by_id(self, api_key_id):
        return next((k for k in self.api_keys.values() if k["id"] == api_key_id), None)

    def get_api_key(self, conn, api_key_id):
        key = self._by_id(api_key_id)
        return self._key_row(key) if key else None

    def revoke(self, conn, api_key_id):
        key = self._by_id(api_key_id)
        key["revoked_at"] = key["revoked_at"] or datetime.now(UTC)
        return self._key_row(key)


class FakeDirectory:
    def __init__(self) -> None:
        self.tenants = {TENANT: Tenant(TENANT, "Acme", "acme", "postgresql:///acme", "silo", "active", "free",
                                       "active")}

    def get(self, tenant_id):
        tenant = self.tenants.get(tenant_id)
        if tenant is None or tenant.status == "deleted":
            raise NotFound("tenant not found")
        return tenant

    def set_status(self, tenant_id, status):
        self.tenants[tenant_id] = replace(self.tenants[tenant_id], status=status)


class FakeAudit:
    def __init__(self) -> None:
        self.entries: list[tuple] = []

    def record(self, conn, actor, action, resource_type, resource_id, details=None):
        self.entries.append((action, str(resource_id)))


class FakeRateLimit:
    """``reserve`` as ``funnel.platform.ratelimit`` does it: count first, refuse (counting nothing) over a limit."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}

    def reserve(self, limits, window_seconds, refusal):
        if any(self.hits.get(key, 0) + 1 > limit for key, limit in limits.items()):
            raise RateLimited(refusal, retry_after_seconds=window_seconds)
        for key in limits:
            self.hits[key] = self.hits.get(key, 0) + 1
        return ratelimit.Reservation({key: None for key in limits})

    def release(self, reservation):
        for key in reservation.windows:
            self.hits[key] -= 1


class FakeTokens:
    """Tokens as readable strings ``kind|tenant|user|family|jti`` (the signing itself is tokens' own business)."""

    def new_token_id(self):
        return uuid.uuid4().hex

    def sign(self, claims, kind, ttl_seconds):
        return "|".join([kind, claims["tid"], claims["sub"], claims.get("fam", ""), claims.get("jti", "")])

    def verify(self, token, kind):
        token_kind, tenant_id, user_id, family_id, jti = token.split("|")
        if token_kind != kind:
            raise Unauthorized("wrong kind of token")
        return {"tid": tenant_id, "sub": user_id} | ({"fam": family_id} if family_id else {}) | (
            {"jti": jti} if jti else {})


@pytest.fixture
def fake(monkeypatch):
    stores, directory, audit = FakeStores(), FakeDirectory(), FakeAudit()

    @contextmanager
    def transaction(*args):
        yield object()

    monkeypatch.setattr(db, "tenant_transaction", transaction)
    monkeypatch.setattr(db, "control_transaction", transaction)
    for module in (auth, users):
        for name in ("store_tenants", "store_users", "store_sessions"):
            monkeypatch.setattr(module, name, stores)
        monkeypatch.setattr(module, "audit", audit)
        monkeypatch.setattr(module, "tokens", FakeTokens())
    monkeypatch.setattr(auth, "store_api_keys", stores)
    monkeypatch.setattr(auth, "directory", directory)
    monkeypatch.setattr(auth, "ratelimit", FakeRateLimit())
    monkeypatch.setattr(users.limits, "take_seat", lambda conn, tenant_id: None)  # tests/integration/billing's
    stores.directory, stores.audit = directory, audit
    return stores


def principal(user: dict, **extra) -> Principal:
    return Principal(TENANT, user["id"], user["role"], email=user["email"], **extra)


# ---------------------------------------------------------------- API keys

def test_an_api_key_acts_as_its_creator_capped_by_its_scope_and_records_its_use(fake):
    owner = fake.add_user("owner")
    created = auth.create_api_key(principal(owner), "ci", "write", None)
    stored = fake.api_keys[created["prefix"]]
    assert stored["hashed_key"] == hashlib.sha256(created["key"].encode()).hexdigest()
    assert created["key"] not in str(stored)  # only the hash is kept
    assert fake.prefixes[created["prefix"]] == TENANT
    assert ("api_key.create", created["id"]) in fake.audit.entries

    caller = auth.authenticate_api_key(created["key"], "10.0.0.1")
    assert (caller.tenant_id, caller.user_id, caller.role) == (TENANT, owner["id"], "member")
    assert caller.api_key_id == created["id"] and caller.ip == "10.0.0.1"
    assert fake.touched == [created["id"]]


@pytest.mark.parametrize("key", ["", "fnl_abc", "xyz_abc_def", "fnl_a_b_c"])
def test_a_malformed_key_is_refused_before_any_lookup(fake, key):
    with pytest.raises(Unauthorized):
        auth.authenticate_api_key(key, None)


def test_a_key_with_an_unknown_prefix_or_a_wrong_secret_is_refused(fake):
    created = auth.create_api_key(principal(fake.add_user("admin")), "ci", "admin", None)
    prefix = created["prefix"]
    with pytest.raises(Unauthorized):
        auth.authenticate_api_key("fnl_000000000000_secret", None)
    with pytest.raises(Unauthorized, match="invalid, revoked or expired"):
        auth.authenticate_api_key(f"fnl_{prefix}_not-the-secret", None)
    assert fake.touched == []


def test_a_revoked_or_expired_key_or_one_of_a_disabled_creator_is_refused(fake):
    member = fake.add_user("member")
    revoked = auth.create_api_key(principal(member), "old", "write", None)
    auth.revoke_api_key(principal(member), revoked["id"])
    expired = auth.create_api_key(principal(member), "tmp", "read", datetime.now(UTC) + timedelta(days=1))
    fake.api_keys[expired["prefix"]]["expires_at"] = datetime.now(UTC) - timedelta(seconds=1)  # time passed
    for created in (revoked, expired):
        with pytest.raises(Unauthorized, match="invalid, revoked or expired"):
            auth.authenticate_api_key(created["key"], None)
    live = auth.create_api_key(principal(member), "live", "read", datetime.now(UTC) + timedelta(days=1))
    assert auth.authenticate_api_key(live["key"], None).role == "viewer"
    member["disabled"] = True
    with pytest.raises(Unauthorized):
        auth.authenticate_api_key(live["key"], None)
    assert fake.touched == [live["id"]]


@pytest.mark.parametrize("status", ["suspended", "provisioning", "deleted"])
def test_a_key_of_a_tenant_that_is_not_active_is_refused(fake, status):
    created = auth.create_api_key(principal(fake.add_user("owner")), "ci", "write", None)
    fake.directory.set_status(TENANT, status)
    with pytest.raises(Unauthorized):
        auth.authenticate_api_key(created["key"], None)
    assert fake.touched == []


def test_viewers_and_api_keys_cannot_create_keys_and_the_scope_is_checked(fake):
    with pytest.raises(Forbidden):
        auth.create_api_key(principal(fake.add_user("viewer")), "x", "read", None)
    admin = fake.add_user("admin")
    with pytest.raises(Forbidden, match="sign in"):
        auth.create_api_key(principal(admin, api_key_id=str(uuid.uuid4())), "x", "read", None)
    with pytest.raises(ValidationFailed):
        auth.create_api_key(principal(admin), "x", "root", None)
    for past in (datetime.now(UTC) - timedelta(seconds=1), datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)):
        with pytest.raises(ValidationFailed) as raised:
            auth.create_api_key(principal(admin), "x", "read", past)
        assert raised.value.extra["errors"][0]["loc"] == ["body", "expires_at"]
    assert fake.api_keys == {}


def test_only_the_creator_or_an_admin_revokes_a_key(fake):
    creator, other, admin = fake.add_user("member"), fake.add_user("member"), fake.add_user("admin")
    created = auth.create_api_key(principal(creator), "ci", "write", None)
    with pytest.raises(Forbidden):
        auth.revoke_api_key(principal(other), created["id"])
    assert auth.revoke_api_key(principal(admin), created["id"])["revoked_at"] is not None
    first = fake.api_keys[created["prefix"]]["revoked_at"]
    assert auth.revoke_api_key(principal(creator), created["id"])["revoked_at"] == first  # revoking again keeps it
    with pytest.raises(NotFound):
        auth.revoke_api_key(principal(admin), str(uuid.uuid4()))


# ---------------------------------------------------------------- sign-in and bearer tokens

def in_directory(fake, user: dict, tenant_id: str = TENANT, slug: str = "acme") -> None:
    fake.login_directory.append({"email": user["email"], "tenant_id": tenant_id, "user_id": user["id"],
                                 "slug": slug})


def test_sign_in_checks_the_password_hash_and_records_the_login(fake):
    user = fake.add_user("member", email="ann@example.com")
    in_directory(fake, user)
    tokens = auth.login("ann@example.com", PASSWORD, None, "10.0.0.1")
    assert tokens["access_token"].startswith(f"access|{TENANT}|{user['id']}|") and tokens["token_type"] == "Bearer"
    assert fake.logins == [user["id"]] and ("auth.login", user["id"]) in fake.audit.entries
    assert auth.authenticate_bearer(tokens["access_token"], None).user_id == user["id"]
    assert auth.ratelimit.hits == {"login:account:ann@example.com": 0, "login:ip:10.0.0.1": 0}  # a success is free
    [family] = fake.families.values()
    assert (family["tenant_id"], family["user_id"]) == (TENANT, user["id"])


def test_a_wrong_password_and_an_unknown_email_are_the_same_401_and_count_toward_the_limits(fake, monkeypatch):
    in_directory(fake, fake.add_user("member", email="ann@example.com"))
    verified = []
    monkeypatch.setattr(auth, "verify_password", lambda stored, given: verified.append(stored) or False)
    for email, password in (("ann@example.com", "wrong password"), ("nobody@example.com", PASSWORD)):
        with pytest.raises(Unauthorized, match="wrong e-mail or password"):
            auth.login(email, password, None, "10.0.0.1")
    assert len(verified) == 2 and verified[1] is None  # the unknown e-mail is verified too (a dummy hash)
    limits = auth.ratelimit.hits
    assert limits["login:ip:10.0.0.1"] == 2
    assert limits["login:account:ann@example.com"] == limits["login:account:nobody@example.com"] == 1
    assert fake.logins == [] and fake.families == {}


def test_sign_in_is_refused_once_the_account_reached_its_limit(fake):
    in_directory(fake, fake.add_user("member", email="ann@example.com"))
    auth.ratelimit.hits["login:account:ann@example.com"] = auth.get_settings().login_max_attempts_per_account
    with pytest.raises(RateLimited) as refused:
        auth.login("ann@example.com", PASSWORD, None, "10.0.0.1")
    assert refused.value.retry_after_seconds == auth.get_settings().login_window_seconds
    assert fake.logins == []


def test_a_disabled_user_cannot_sign_in(fake):
    in_directory(fake, fake.add_user("member", email="ann@example.com", disabled=True))
    with pytest.raises(Unauthorized):
        auth.login("ann@example.com", PASSWORD, None, None)


def test_only_a_password_right_for_several_workspaces_asks_which(fake):
    first, second = fake.add_user("member", email="ann@example.com"), fake.add_user("admin", email="ann@example.com")
    in_directory(fake, first, slug="acme")
    in_directory(fake, second, slug="beta")
    with pytest.raises(Unauthorized, match="wrong e-mail or password") as wrong:
        auth.login("ann@example.com", "wrong password", None, None)
    assert "tenants" not in wrong.value.extra
    with pytest.raises(ValidationFailed) as raised:
        auth.login("ann@example.com", PASSWORD, None, None)
    assert raised.value.extra["tenants"] == ["acme", "beta"]
    assert raised.value.extra["errors"][0]["loc"] == ["body", "tenant"]
    assert auth.ratelimit.hits["login:account:ann@example.com"] == 2  # the question counts as an attempt
    assert auth.login("ann@example.com", PASSWORD, "beta", None)["access_token"].startswith(
        f"access|{TENANT}|{second['id']}|")
    fake.users[first["id"]]["password_hash"] = hash_password("another password entirely")
    assert auth.login("ann@example.com", PASSWORD, None, None)["access_token"].startswith(
        f"access|{TENANT}|{second['id']}|")


def _session(fake, user: dict) -> dict:
    if not any(entry["user_id"] == user["id"] for entry in fake.login_directory):
        in_directory(fake, user)
    return auth.login(user["email"], PASSWORD, None, None)


def test_a_bearer_token_of_a_disabled_or_invited_user_or_an_inactive_tenant_is_refused(fake):
    disabled, invited, active = fake.add_user("member", disabled=True), fake.add_user("member", invited=True), \
        fake.add_user("member")
    for user in (disabled, invited):
        family = fake.insert_family(None, TENANT, user["id"], "j", 60)
        with pytest.raises(Unauthorized, match="not found or disabled"):
            auth.authenticate_bearer(f"access|{TENANT}|{user['id']}|{family}|", None)
    token = _session(fake, active)["access_token"]
    other_tenant = token.replace(f"|{TENANT}|", "|other-tenant|")
    with pytest.raises(Unauthorized, match="session ended"):  # the family is not that tenant's
        auth.authenticate_bearer(other_tenant, None)
    fake.directory.set_status(TENANT, "suspended")
    with pytest.raises(Unauthorized, match="tenant is not active"):
        auth.authenticate_bearer(token, None)


def test_a_token_without_a_session_is_refused(fake):
    user = fake.add_user("member")
    with pytest.raises(Unauthorized, match="no longer accepted"):
        auth.authenticate_bearer(f"access|{TENANT}|{user['id']}||", None)
    with pytest.raises(Unauthorized, match="no longer accepted"):
        auth.refresh(f"refresh|{TENANT}|{user['id']}||")


def test_refresh_rotates_and_a_replay_revokes_the_family(fake):
    user = fake.add_user("member", email="ann@example.com")
    first = _session(fake, user)
    second = auth.refresh(first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert auth.authenticate_bearer(second["access_token"], None).user_id == user["id"]
    with pytest.raises(Unauthorized, match="already used"):
        auth.refresh(first["refresh_token"])
    [family] = fake.families.values()
    assert family["revoked"] == "reuse"
    for attempt in (lambda: auth.refresh(second["refresh_token"]),
                    lambda: auth.authenticate_bearer(second["access_token"], None)):
        with pytest.raises(Unauthorized):
            attempt()


def test_logout_ends_one_session_and_everywhere_all_of_them(fake):
    user = fake.add_user("member", email="ann@example.com")
    here, there, elsewhere = _session(fake, user), _session(fake, user), _session(fake, user)
    auth.logout(here["refresh_token"], everywhere=False)
    auth.logout(here["refresh_token"], everywhere=False)  # again: no error
    with pytest.raises(Unauthorized):
        auth.authenticate_bearer(here["access_token"], None)
    with pytest.raises(Unauthorized, match="already used"):
        auth.logout(here["refresh_token"], everywhere=True)  # a spent session cannot end the others
    assert auth.authenticate_bearer(there["access_token"], None).user_id == user["id"]
    auth.logout(there["refresh_token"], everywhere=True)
    assert sorted(f["revoked"] for f in fake.families.values()) == ["logout", "logout_everywhere",
                                                                      "logout_everywhere"]
    with pytest.raises(Unauthorized):
        auth.authenticate_bearer(elsewhere["access_token"], None)


def test_disabling_a_user_ends_their_sessions_for_good(fake):
    admin, member = fake.add_user("admin"), fake.add_user("member", email="ann@example.com")
    session = _session(fake, member)
    users.update_user(principal(admin), member["id"], disabled=True)
    users.update_user(principal(admin), member["id"], disabled=False)
    for attempt in (lambda: auth.refresh(session["refresh_token"]),
                    lambda: auth.authenticate_bearer(session["access_token"], None)):
        with pytest.raises(Unauthorized):
            attempt()
    assert [f["revoked"] for f in fake.families.values()] == ["user_disabled"]


# ---------------------------------------------------------------- user management

def test_members_and_viewers_cannot_invite_or_change_users(fake):
    target = fake.add_user("viewer")
    for role in ("member", "viewer"):
        caller = principal(fake.add_user(role))
        with pytest.raises(Forbidden):
            users.invite_user(caller, email="new@example.com", role="viewer", display_name=None)
        with pytest.raises(Forbidden):
            users.update_user(caller, target["id"], role="member")
    assert target["role"] == "viewer"


def test_only_an_owner_grants_changes_or_disables_an_owner(fake):
    owner, other_owner, admin, member = (fake.add_user("owner"), fake.add_user("owner"), fake.add_user("admin"),
                                         fake.add_user("member"))
    with pytest.raises(Forbidden, match="only an owner"):
        users.update_user(principal(admin), member["id"], role="owner")
    with pytest.raises(Forbidden, match="only an owner"):
        users.update_user(principal(admin), other_owner["id"], disabled=True)
    with pytest.raises(Forbidden, match="only an owner"):
        users.invite_user(principal(admin), email="boss@example.com", role="owner", display_name=None)
    assert users.update_user(principal(admin), member["id"], role="admin")["role"] == "admin"
    assert users.update_user(principal(owner), other_owner["id"], role="admin")["role"] == "admin"
    assert ("user.update", other_owner["id"]) in fake.audit.entries


def test_nobody_disables_themselves_or_changes_their_own_role(fake):
    admin = fake.add_user("admin")
    fake.add_user("owner")
    with pytest.raises(Forbidden, match="yourself"):
        users.update_user(principal(admin), admin["id"], disabled=True)
    with pytest.raises(Forbidden, match="yourself"):
        users.update_user(principal(admin), admin["id"], role="member")
    assert users.update_user(principal(admin), admin["id"], display_name="Ann")["display_name"] == "Ann"


def test_the_last_active_owner_is_neither_demoted_nor_disabled(fake):
    owner, second = fake.add_user("owner"), fake.add_user("owner")
    fake.add_user("owner", disabled=True)  # a disabled owner does not count
    assert users.update_user(principal(owner), second["id"], disabled=True)["disabled"] is True
    # ``owner`` is now the only active owner. They cannot demote themselves (that is the rule above), and the
    # count holds whoever else asks: here an owner principal whose own row is not an active owner.
    someone = Principal(TENANT, str(uuid.uuid4()), "owner")
    with pytest.raises(Conflict, match="at least one active owner"):
        users.update_user(someone, owner["id"], role="admin")
    with pytest.raises(Conflict):
        users.update_user(someone, owner["id"], disabled=True)
    assert owner["role"] == "owner" and not owner["disabled"]


def test_a_change_without_fields_writes_nothing(fake):
    admin, member = fake.add_user("admin"), fake.add_user("member")
    assert users.update_user(principal(admin), member["id"]) == fake.get_user(None, member["id"])
    assert fake.audit.entries == []
    with pytest.raises(NotFound):
        users.update_user(principal(admin), str(uuid.uuid4()), role="viewer")


def test_an_invitation_is_accepted_once_with_a_long_enough_password(fake, monkeypatch):
    invited = fake.add_user("member", invited=True)
    token = f"invite|{TENANT}|{invited['id']}||"

    def accept(conn, user_id, password_hash):
        row = fake.users.get(user_id)
        if row is None or row["invited_at"] is None or row["disabled"]:
            return None
        row.update(password_hash=password_hash, invited_at=None)
        return fake._public(row)

    fake.accept_invite = accept
    with pytest.raises(ValidationFailed):
        users.accept_invite(token, "short")
    assert users.accept_invite(token, PASSWORD)["invited_at"] is None
    with pytest.raises(NotFound, match="already used"):
        users.accept_invite(token, PASSWORD)
    family = fake.insert_family(None, TENANT, invited["id"], "j", 60)
    assert auth.authenticate_bearer(f"access|{TENANT}|{invited['id']}|{family}|", None).user_id == invited["id"]
