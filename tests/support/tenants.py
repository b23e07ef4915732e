"""Test helpers: provision tenants and sign their users in (through the real services)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from funnel import db
from funnel.platform import auth, tenants
from funnel.platform.principal import Principal

PASSWORD = "correct horse battery staple"


@dataclass
class TenantHandle:
    tenant_id: str
    slug: str
    owner_id: str
    owner_email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def owner(self) -> Principal:
        return Principal(tenant_id=self.tenant_id, user_id=self.owner_id, role="owner", email=self.owner_email)


def new_tenant(pool: str | None = None, name: str | None = None) -> TenantHandle:
    """A fresh tenant (silo by default, or in the pooled database ``pool``) with a signed-in owner."""
    suffix = uuid.uuid4().hex[:10]
    slug = f"t-{suffix}"
    email = f"owner-{suffix}@example.com"
    tenant, owner = tenants.provision(name or f"Tenant {suffix}", email, PASSWORD, slug=slug, pool=pool)
    tokens = auth.login(email, PASSWORD, None, "127.0.0.1")
    return TenantHandle(tenant.id, slug, str(owner["id"]), email, tokens["access_token"], tokens["refresh_token"])


def row_count(tenant: TenantHandle, table: str) -> int:
    """How many rows of ``table`` the tenant sees (through RLS)."""
    with db.tenant_transaction(tenant.tenant_id) as conn:
        return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
