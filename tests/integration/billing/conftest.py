"""Fixtures of the plan-limit tests: the API in-process (its every answer checked against the OpenAPI document),
pooled tenants (so every test runs under row-level security beside other tenants), and setting a tenant's plan,
subscription status and this month's counters directly."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from funnel import db
from funnel.api.app import create_app
from funnel.billing import limits, plans
from tests.support.contract import ContractCheck, contract_client
from tests.support.tenants import TenantHandle, new_pooled_tenant


@pytest.fixture(scope="module")
def app(runtime):
    return create_app()


@pytest.fixture(scope="module")
def contract(app):
    return ContractCheck(app.openapi())


@pytest.fixture
def client(app, contract):
    return contract_client(app, contract)


@pytest.fixture
def tenant(runtime) -> TenantHandle:
    return new_pooled_tenant()


@pytest.fixture
def used_up() -> Callable[..., None]:
    """``used_up(tenant, metric, leave=0)``: this month's ``metric`` used up to ``leave`` units below the limit."""
    def fill(tenant: TenantHandle, metric: plans.Metric, leave: int = 0) -> None:
        limit = plans.plan_named(db.directory.get(tenant.tenant_id).plan).limit(metric)
        assert limit is not None
        with db.tenant_transaction(tenant.tenant_id) as conn:
            limits.use(conn, tenant.tenant_id, metric, int(limit) - leave)
    return fill


def counter(tenant: TenantHandle, metric: str) -> float:
    """This month's ``metric`` of the tenant, as ``GET /v1/usage`` reads it (0 before the first use)."""
    from funnel.billing import usage

    _, _, counters = usage.counters(tenant.tenant_id)
    return float(next(c.used for c in counters if c.metric == metric))
