"""Test helpers of billing: a tenant's plan and subscription status set in the control DB, as Stripe's webhooks
would leave them (``funnel.billing.plans`` names the plans; ``enterprise`` limits nothing)."""
from __future__ import annotations

from funnel import db
from tests.support.tenants import TenantHandle


def set_subscription(tenant: TenantHandle, *, plan: str | None = None, status: str | None = None) -> None:
    with db.control_admin_connect() as conn:
        if plan is not None:
            conn.execute("UPDATE tenants SET plan = %s WHERE id = %s", (plan, tenant.tenant_id))
        if status is not None:
            conn.execute("UPDATE tenants SET subscription_status = %s WHERE id = %s", (status, tenant.tenant_id))
    db.directory.forget(tenant.tenant_id)  # the directory caches the plan for a while
