"""The subscription gate (``funnel.billing.limits``) over an in-memory fake of its store: no database."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from funnel.billing import limits
from funnel.platform.errors import PaymentRequired

TENANT = "acme"


@contextmanager
def no_transaction():
    yield None


# ---------------------------------------------------------------- the subscription gate
@pytest.mark.parametrize("status, blocked", [("canceled", True), ("unpaid", True), ("trial", False),
                                             ("active", False), ("past_due", False), (None, False)])
def test_generation_is_blocked_only_while_canceled_or_unpaid(monkeypatch, status, blocked):
    class Billing:
        def subscription_status(self, conn, tenant_id):
            assert tenant_id == TENANT
            return status

    monkeypatch.setattr(limits, "store_subscriptions", Billing())
    monkeypatch.setattr(limits.db, "control_transaction", no_transaction)
    if blocked:
        with pytest.raises(PaymentRequired, match=f"the subscription is {status}"):
            limits.check_subscription(TENANT)
    else:
        limits.check_subscription(TENANT)
