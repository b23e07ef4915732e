"""Shared fixtures of the community (DRM) integration tests: one pooled tenant per test module (pooled, so every
community test also runs under row-level security beside other tenants), its owner's headers, users of other roles,
and a transaction in the tenant's database for setting rows up through the area's own services."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from funnel import db
from funnel.community import identity
from funnel.community.identity import AccountIn, Resolved
from funnel.db import Connection
from funnel.platform import users
from tests.support.tenants import PASSWORD, TenantHandle, new_tenant

COMMUNITY_POOL = "pool_community"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def community_tenant(runtime) -> TenantHandle:
    """A fresh tenant in the community pool, its owner signed in (one per test module)."""
    return new_tenant(pool=COMMUNITY_POOL)


@pytest.fixture(scope="module")
def owner_headers(community_tenant) -> dict[str, str]:
    return community_tenant.headers


@pytest.fixture(scope="module")
def headers_for(runtime, community_tenant) -> Callable[[str], dict[str, str]]:
    """``headers_for("member")``: the headers of a new signed-in user of that role in the module's tenant (one
    user per role, made on first use)."""
    import httpx

    made: dict[str, dict[str, str]] = {}

    def headers(role: str) -> dict[str, str]:
        if role not in made:
            email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
            users.create_user(community_tenant.tenant_id, email=email, password=PASSWORD, role=role,
                              display_name=None, actor="test")
            answer = httpx.post(runtime.api_url + "/v1/auth/login", json={"email": email, "password": PASSWORD},
                                timeout=30)
            answer.raise_for_status()
            made[role] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        return made[role]

    return headers


@pytest.fixture(scope="module")
def tenant_conn(community_tenant) -> Callable[[], AbstractContextManager[Connection]]:
    """``with tenant_conn() as conn:`` a transaction in the module tenant's database (committed on exit), for
    setting up rows through the area's services (``identity.resolve_accounts``, store functions)."""

    @contextmanager
    def transaction() -> Iterator[Connection]:
        with db.tenant_transaction(community_tenant.tenant_id) as conn:
            yield conn

    return transaction


@pytest.fixture(scope="module")
def resolve(tenant_conn) -> Callable[..., list[Resolved]]:
    """``resolve(AccountIn(...), ...)``: ingest accounts as every ingest path does (``identity.resolve_accounts``,
    one batch, committed)."""

    def run(*accounts: AccountIn) -> list[Resolved]:
        with tenant_conn() as conn:
            return identity.resolve_accounts(conn, list(accounts))

    return run


@pytest.fixture(scope="module")
def add_activities(tenant_conn) -> Callable[..., list[uuid.UUID]]:
    """``add_activities(resolved, ["star", "fork"], metadata={...})``: activity rows of a resolved account (one per
    action, a minute apart, newest last), inserted directly: the tests here are about identity, not ingestion.
    Returns their ids."""

    def insert(of: Resolved, actions: Sequence[str], *, metadata: dict[str, Any] | None = None,
               source: str = "test") -> list[uuid.UUID]:
        start = datetime.now(UTC) - timedelta(days=1)
        ids = [uuid.uuid4() for _ in actions]
        with tenant_conn() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO activities (activity_id, developer_id, account_id, action, occurred_at, source, "
                "metadata, dedup_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(activity_id, of.developer_id, of.account_id, action, start + timedelta(minutes=n), source,
                  Jsonb(metadata) if metadata is not None else None, f"test:{activity_id}")
                 for n, (activity_id, action) in enumerate(zip(ids, actions, strict=True))])
        return ids

    return insert
