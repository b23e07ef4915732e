"""What the tenant's subscription allows: the gate every consuming path calls before it uses anything.

This is billing's public module (the import contract lets every area use it); the rest of the billing package
is its own.
"""
from __future__ import annotations

from funnel import db
from funnel.billing import store_subscriptions
from funnel.platform.errors import PaymentRequired

# Subscription statuses that stop generation; trial and past_due still work (Stripe retries the payment).
BLOCKING_STATUSES = ("canceled", "unpaid")


def check_subscription(tenant_id: str) -> None:
    """402 while the tenant's subscription is canceled or unpaid."""
    with db.control_transaction() as conn:
        status = store_subscriptions.subscription_status(conn, tenant_id)
    if status in BLOCKING_STATUSES:
        raise PaymentRequired(f"the subscription is {status}: update billing to generate articles")
