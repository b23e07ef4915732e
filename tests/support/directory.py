"""The tenant directory for unit tests over in-memory fakes: no control database, every tenant active and, unless
named in ``unverified``, verified (``funnel.platform.tenants.require_email_verified`` reads it)."""
from __future__ import annotations

from funnel.db import Tenant


class FakeDirectory:
    def __init__(self) -> None:
        self.unverified: set[str] = set()

    def get(self, tenant_id: str) -> Tenant:
        return Tenant(tenant_id, "Test", "test", "postgresql:///test", "pool", "active", "free", "trial",
                      email_verified=tenant_id not in self.unverified)

    def forget(self, tenant_id: str | None = None) -> None:
        pass


def install_fake_directory(monkeypatch) -> FakeDirectory:
    """A FakeDirectory in place of ``funnel.platform.tenants.directory``."""
    from funnel.platform import tenants

    fake = FakeDirectory()
    monkeypatch.setattr(tenants, "directory", fake)
    return fake
