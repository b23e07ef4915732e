"""The subscription gate (``funnel.billing.limits``) over an in-memory fake of its store: no database."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from funnel.billing import limits
from funnel.platform.errors import PaymentRequired

TENANT = "acme"


@contextmanager
def no_transaction():
    yield None


# ---------------------------------------------------------------- the subscription gate
NOW = datetime(2026, 12, 2, tzinfo=UTC)
WITHIN_GRACE, PAST_GRACE = NOW - timedelta(days=6, hours=23), NOW - timedelta(days=7, minutes=1)


@pytest.mark.parametrize("status, past_due_since, refusal", [
    ("canceled", None, "the subscription is canceled"), ("unpaid", NOW, "the subscription is unpaid"),
    ("trial", None, None), ("active", None, None), ("past_due", None, None), ("past_due", WITHIN_GRACE, None),
    ("past_due", PAST_GRACE, "past due since 2026-11-24 and its grace period ended 2026-12-01"),
    (None, None, None)])
def test_use_is_refused_while_canceled_unpaid_or_past_due_beyond_the_grace_period(monkeypatch, status,
                                                                                   past_due_since, refusal):
    class Billing:
        def subscription_standing(self, conn, tenant_id):
            assert tenant_id == TENANT
            return None if status is None else {"subscription_status": status, "past_due_since": past_due_since}

    monkeypatch.setattr(limits, "store_subscriptions", Billing())
    monkeypatch.setattr(limits.db, "control_transaction", no_transaction)
    monkeypatch.setattr(limits, "datetime", type("Clock", (), {"now": staticmethod(lambda tz: NOW)}))
    answer = limits.subscription_allows_use(TENANT)
    assert (answer is None) if refusal is None else (refusal in answer)
    if refusal:
        with pytest.raises(PaymentRequired, match=refusal):
            limits.check_subscription(TENANT)
    else:
        limits.check_subscription(TENANT)
