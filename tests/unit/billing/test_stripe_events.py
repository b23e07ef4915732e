"""Processing a verified Stripe event (``subscriptions.process_event``) over an in-memory fake of
``store_subscriptions``: an event id is processed once (a redelivery changes nothing), an event is applied to the
tenant its metadata or its customer names, and subscription and invoice events set status and plan as Stripe's
are mapped. No database and no Stripe: the fake holds the control DB's tenants, events and invoices in dicts."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from funnel.billing import subscriptions as billing

TENANT = "acme"


class FakeBilling:
    """The ``store_subscriptions`` functions ``process_event`` calls, over ``tenants``, ``events`` and ``invoices``."""

    def __init__(self):
        self.tenants = {TENANT: {"stripe_customer_id": "cus_1", "stripe_subscription_id": None,
                                 "subscription_status": "trial", "plan": "free", "current_period_end": None}}
        self.events: dict[str, tuple[str, str | None]] = {}
        self.invoices: dict[str, dict] = {}

    def tenant_exists(self, conn, tenant_id):
        return tenant_id in self.tenants

    def tenant_of_customer(self, conn, customer_id):
        return next((tid for tid, row in self.tenants.items() if row["stripe_customer_id"] == customer_id), None)

    def record_event(self, conn, event_id, event_type, tenant_id):
        if event_id in self.events:  # ON CONFLICT (id) DO NOTHING
            return False
        self.events[event_id] = (event_type, tenant_id)
        return True

    def record_checkout(self, conn, tenant_id, customer_id, subscription_id):
        row = self.tenants[tenant_id]
        row.update(stripe_customer_id=row["stripe_customer_id"] or customer_id, stripe_subscription_id=subscription_id)

    def set_subscription(self, conn, tenant_id, *, subscription_id, status, plan, current_period_end):
        self.tenants[tenant_id].update(stripe_subscription_id=subscription_id, subscription_status=status, plan=plan,
                                       current_period_end=current_period_end)

    def upsert_invoice(self, conn, tenant_id, *, invoice_id, amount, currency, status):
        self.invoices[invoice_id] = {"tenant_id": tenant_id, "amount": amount, "currency": currency, "status": status}

    def active_to_past_due(self, conn, tenant_id):
        if self.tenants[tenant_id]["subscription_status"] == "active":
            self.tenants[tenant_id]["subscription_status"] = "past_due"


@pytest.fixture
def store(monkeypatch):
    fake = FakeBilling()
    fake.forgotten = []

    @contextmanager
    def transaction():
        yield object()

    monkeypatch.setattr(billing, "store_subscriptions", fake)
    monkeypatch.setattr(billing.db, "control_transaction", transaction)
    monkeypatch.setattr(billing.directory, "forget", fake.forgotten.append)
    return fake


def subscription(status="active", plan="pro", **fields):
    return {"id": "sub_1", "customer": "cus_1", "status": status, "current_period_end": 1_800_000_000,
            "items": {"data": [{"price": {"lookup_key": plan}}]}, **fields}


def receipt(answer):
    return answer.model_dump(exclude_unset=True)


def test_an_event_is_processed_once(store):
    first = billing.process_event("evt_1", "customer.subscription.updated", subscription())
    assert receipt(first) == {"received": True, "duplicate": False}
    assert store.tenants[TENANT]["subscription_status"] == "active" and store.tenants[TENANT]["plan"] == "pro"
    assert store.events == {"evt_1": ("customer.subscription.updated", TENANT)} and store.forgotten == [TENANT]
    store.tenants[TENANT]["plan"] = "changed since"
    again = billing.process_event("evt_1", "customer.subscription.updated", subscription())  # Stripe redelivers
    assert receipt(again) == {"received": True, "duplicate": True}
    assert store.tenants[TENANT]["plan"] == "changed since" and store.forgotten == [TENANT]


def test_an_event_for_no_known_tenant_is_recorded_and_ignored(store):
    answer = billing.process_event("evt_2", "customer.subscription.updated", subscription(customer="cus_unknown"))
    assert receipt(answer) == {"received": True, "duplicate": False, "ignored": "unknown customer"}
    assert store.events == {"evt_2": ("customer.subscription.updated", None)}
    assert store.tenants[TENANT]["subscription_status"] == "trial"
    assert receipt(billing.process_event("evt_2", "customer.subscription.updated",
                                         subscription(customer="cus_unknown")))["duplicate"] is True


def test_the_metadata_tenant_wins_over_the_customer(store):
    store.tenants["other"] = {**store.tenants[TENANT], "stripe_customer_id": "cus_2"}
    billing.process_event("evt_3", "customer.subscription.created", subscription(metadata={"tenant_id": "other"}))
    assert store.tenants["other"]["subscription_status"] == "active"
    assert store.tenants[TENANT]["subscription_status"] == "trial"


@pytest.mark.parametrize("stripe_status, ours", [("trialing", "trial"), ("active", "active"),
                                                 ("incomplete_expired", "canceled"), ("paused", "past_due"),
                                                 ("something new", "past_due")])
def test_stripe_statuses_are_mapped(store, stripe_status, ours):
    billing.process_event("evt_4", "customer.subscription.updated", subscription(status=stripe_status))
    assert store.tenants[TENANT]["subscription_status"] == ours


def test_a_deleted_subscription_is_canceled_on_the_free_plan(store):
    billing.process_event("evt_5", "customer.subscription.deleted", subscription(status="active"))
    assert store.tenants[TENANT]["subscription_status"] == "canceled" and store.tenants[TENANT]["plan"] == "free"


def test_a_failed_payment_moves_an_active_subscription_to_past_due(store):
    billing.process_event("evt_6", "customer.subscription.updated", subscription())
    billing.process_event("evt_7", "invoice.payment_failed", {"id": "in_1", "customer": "cus_1", "amount_due": 980,
                                                              "currency": "jpy"})
    assert store.tenants[TENANT]["subscription_status"] == "past_due"
    assert store.invoices == {"in_1": {"tenant_id": TENANT, "amount": 980, "currency": "jpy", "status": "failed"}}


def test_a_completed_checkout_keeps_the_tenants_customer(store):
    billing.process_event("evt_8", "checkout.session.completed", {"customer": "cus_other", "subscription": "sub_9",
                                                                  "client_reference_id": TENANT})
    assert store.tenants[TENANT]["stripe_customer_id"] == "cus_1"
    assert store.tenants[TENANT]["stripe_subscription_id"] == "sub_9"
