"""Processing a verified Stripe event (``subscriptions.process_event``) over an in-memory fake of
``store_subscriptions``: an event id is processed once (a redelivery changes nothing), an event is applied to the
tenant its metadata or its customer names, an event older than the state applied changes nothing (and a canceled
subscription stays canceled), subscription and invoice events set status, plan and the past_due clock as Stripe's
are mapped, a refund marks its invoice. No database and no Stripe: the fake holds the control DB's tenants,
events and invoices in dicts."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from funnel.billing import subscriptions as billing

TENANT = "acme"
T0 = 1_800_000_000  # an event's `created`, seconds


class FakeBilling:
    """The ``store_subscriptions`` functions ``process_event`` calls, over ``tenants``, ``events`` and ``invoices``."""

    def __init__(self):
        self.tenants = {TENANT: self.tenant("cus_1")}
        self.events: dict[str, tuple[str, str | None]] = {}
        self.invoices: dict[str, dict] = {}

    @staticmethod
    def tenant(customer_id):
        return {"stripe_customer_id": customer_id, "stripe_subscription_id": None, "subscription_status": "trial",
                "plan": "free", "stripe_price_id": None, "current_period_end": None, "cancel_at_period_end": False,
                "trial_end": None, "past_due_since": None, "subscription_event_at": None}

    def tenant_exists(self, conn, tenant_id):
        return tenant_id in self.tenants

    def tenant_of_customer(self, conn, customer_id):
        return next((tid for tid, row in self.tenants.items() if row["stripe_customer_id"] == customer_id), None)

    def record_event(self, conn, event_id, event_type, tenant_id):
        if event_id in self.events:  # ON CONFLICT (id) DO NOTHING
            return False
        self.events[event_id] = (event_type, tenant_id)
        return True

    def lock_subscription_clock(self, conn, tenant_id):
        row = self.tenants[tenant_id]
        return {k: row[k] for k in ("stripe_subscription_id", "subscription_status", "subscription_event_at",
                                    "past_due_since")}

    def record_checkout(self, conn, tenant_id, customer_id, subscription_id, event_at):
        row = self.tenants[tenant_id]
        if row["stripe_subscription_id"] != subscription_id and row["subscription_status"] == "canceled":
            row["subscription_status"] = "incomplete"
        row.update(stripe_customer_id=row["stripe_customer_id"] or customer_id, stripe_subscription_id=subscription_id,
                   subscription_event_at=max(filter(None, (row["subscription_event_at"], event_at))))

    def set_subscription(self, conn, tenant_id, *, subscription_id, status, plan, price_id, current_period_end,
                         cancel_at_period_end, trial_end, past_due_since, event_at):
        self.tenants[tenant_id].update(
            stripe_subscription_id=subscription_id, subscription_status=status, plan=plan, stripe_price_id=price_id,
            current_period_end=current_period_end, cancel_at_period_end=cancel_at_period_end, trial_end=trial_end,
            past_due_since=past_due_since, subscription_event_at=event_at)

    def set_payment_standing(self, conn, tenant_id, *, status, past_due_since, event_at):
        self.tenants[tenant_id].update(subscription_status=status, past_due_since=past_due_since,
                                       subscription_event_at=event_at)

    def upsert_invoice(self, conn, tenant_id, *, invoice_id, amount, currency, status, hosted_invoice_url,
                       invoice_pdf, charge_id, payment_intent_id):
        order = ["failed", "paid", "refunded"]
        known = self.invoices.get(invoice_id)
        if known and order.index(known["status"]) >= order.index(status):
            return
        self.invoices[invoice_id] = {"tenant_id": tenant_id, "amount": amount, "currency": currency, "status": status,
                                     "charge": charge_id, "refunded_amount": 0}

    def refund_invoice(self, conn, tenant_id, *, invoice_id, charge_id, payment_intent_id, refunded_amount):
        for stripe_id, row in self.invoices.items():
            if row["tenant_id"] == tenant_id and (stripe_id == invoice_id or row["charge"] == charge_id):
                row.update(status="refunded", refunded_amount=max(row["refunded_amount"], refunded_amount))
                return stripe_id
        return None


@pytest.fixture
def store(monkeypatch):
    fake = FakeBilling()
    fake.forgotten = []
    fake.told = []

    @contextmanager
    def transaction():
        yield object()

    monkeypatch.setattr(billing, "store_subscriptions", fake)
    monkeypatch.setattr(billing.db, "control_transaction", transaction)
    monkeypatch.setattr(billing.directory, "forget", fake.forgotten.append)
    monkeypatch.setattr(billing, "_notify_owners", lambda tenant_id, title, body: lambda: fake.told.append(
        (tenant_id, title)))
    return fake


def subscription(status="active", plan="pro", **fields):
    return {"id": "sub_1", "customer": "cus_1", "status": status, "current_period_end": 1_900_000_000,
            "items": {"data": [{"price": {"id": f"price_{plan}", "lookup_key": plan}}]}, **fields}


def process(event_id, event_type, data, created=T0):
    return billing.process_event(event_id, event_type, data, created=created).model_dump(exclude_unset=True)


def at(seconds):
    return datetime.fromtimestamp(seconds, UTC)


def test_an_event_is_processed_once(store):
    assert process("evt_1", "customer.subscription.updated", subscription()) == {"received": True, "duplicate": False}
    row = store.tenants[TENANT]
    assert (row["subscription_status"], row["plan"], row["stripe_price_id"]) == ("active", "pro", "price_pro")
    assert store.events == {"evt_1": ("customer.subscription.updated", TENANT)} and store.forgotten == [TENANT]
    row["plan"] = "changed since"
    again = process("evt_1", "customer.subscription.updated", subscription())  # Stripe redelivers
    assert again == {"received": True, "duplicate": True}
    assert row["plan"] == "changed since" and store.forgotten == [TENANT]


def test_an_event_for_no_known_tenant_is_recorded_and_ignored(store):
    answer = process("evt_2", "customer.subscription.updated", subscription(customer="cus_unknown"))
    assert answer == {"received": True, "duplicate": False, "ignored": "unknown customer"}
    assert store.events == {"evt_2": ("customer.subscription.updated", None)}
    assert store.tenants[TENANT]["subscription_status"] == "trial"
    assert process("evt_2", "customer.subscription.updated", subscription(customer="cus_unknown"))["duplicate"]


def test_the_metadata_tenant_wins_over_the_customer_and_the_other_tenant_is_untouched(store):
    store.tenants["other"] = store.tenant("cus_2")
    process("evt_3", "customer.subscription.created", subscription(metadata={"tenant_id": "other"}))
    assert store.tenants["other"]["subscription_status"] == "active"
    assert store.tenants[TENANT] == store.tenant("cus_1")


@pytest.mark.parametrize("stripe_status, ours", [("trialing", "trial"), ("active", "active"),
                                                 ("incomplete_expired", "canceled"), ("paused", "past_due"),
                                                 ("something new", "past_due")])
def test_stripe_statuses_are_mapped(store, stripe_status, ours):
    process("evt_4", "customer.subscription.updated", subscription(status=stripe_status))
    assert store.tenants[TENANT]["subscription_status"] == ours


def test_a_deleted_subscription_is_canceled_on_the_free_plan_for_good(store):
    process("evt_5", "customer.subscription.deleted", subscription(status="canceled"))
    assert store.tenants[TENANT]["subscription_status"] == "canceled" and store.tenants[TENANT]["plan"] == "free"
    late = process("evt_5b", "customer.subscription.updated", subscription(), created=T0 + 5)
    assert late["ignored"] == "the subscription is canceled"  # canceled is final at Stripe
    assert store.tenants[TENANT]["subscription_status"] == "canceled"


def test_an_older_event_changes_nothing_and_a_same_second_one_applies(store):
    process("evt_new", "customer.subscription.updated", subscription(cancel_at_period_end=True), created=T0 + 10)
    older = process("evt_old", "customer.subscription.updated", subscription(plan="starter"), created=T0)
    assert older["ignored"] == "older than the state already applied"
    row = store.tenants[TENANT]
    assert (row["plan"], row["cancel_at_period_end"], row["subscription_event_at"]) == ("pro", True, at(T0 + 10))
    process("evt_same", "customer.subscription.updated", subscription(), created=T0 + 10)  # order unknown: applied
    assert store.tenants[TENANT]["cancel_at_period_end"] is False


def test_a_failed_payment_starts_the_past_due_clock_once_and_a_paid_invoice_stops_it(store):
    process("evt_6", "customer.subscription.updated", subscription())
    process("evt_7", "invoice.payment_failed", {"id": "in_1", "customer": "cus_1", "subscription": "sub_1",
                                                "amount_due": 980, "currency": "jpy"}, created=T0 + 1)
    row = store.tenants[TENANT]
    assert (row["subscription_status"], row["past_due_since"]) == ("past_due", at(T0 + 1))
    assert store.invoices["in_1"]["status"] == "failed" and store.invoices["in_1"]["amount"] == 980
    process("evt_8", "customer.subscription.updated", subscription(status="past_due"), created=T0 + 3600)
    assert row["past_due_since"] == at(T0 + 1)  # the grace period counts from the first failure
    process("evt_9", "invoice.paid", {"id": "in_1", "customer": "cus_1", "subscription": "sub_1",
                                      "amount_paid": 980, "currency": "jpy", "charge": {"id": "ch_1"}},
            created=T0 + 7200)
    assert (row["subscription_status"], row["past_due_since"]) == ("active", None)
    late = process("evt_10", "invoice.payment_failed", {"id": "in_1", "customer": "cus_1", "subscription": "sub_1",
                                                        "amount_due": 980, "currency": "jpy"}, created=T0 + 1)
    assert late == {"received": True, "duplicate": False}
    assert row["subscription_status"] == "active" and store.invoices["in_1"]["status"] == "paid"


def test_a_refund_marks_the_invoice_its_charge_paid(store):
    process("evt_11", "invoice.paid", {"id": "in_2", "customer": "cus_1", "amount_paid": 4980, "currency": "jpy",
                                       "charge": "ch_2"})
    process("evt_12", "charge.refunded", {"id": "ch_2", "customer": "cus_1", "amount_refunded": 1000,
                                          "payment_intent": "pi_2"})
    assert store.invoices["in_2"]["status"] == "refunded" and store.invoices["in_2"]["refunded_amount"] == 1000
    unknown = process("evt_13", "charge.refunded", {"id": "ch_other", "customer": "cus_1", "amount_refunded": 5})
    assert unknown["ignored"] == "a charge of no invoice of the workspace"


def test_the_trials_end_is_told_to_the_owners_after_the_commit(store):
    process("evt_14", "customer.subscription.trial_will_end", subscription(status="trialing", trial_end=T0 + 86400))
    ends = at(T0 + 86400)
    assert store.tenants[TENANT]["trial_end"] == ends
    assert store.told == [(TENANT, f"Your trial ends on {ends:%Y-%m-%d}")]
    process("evt_14", "customer.subscription.trial_will_end", subscription(status="trialing", trial_end=T0 + 86400))
    assert len(store.told) == 1  # a redelivery tells no one again


def test_a_completed_checkout_keeps_the_tenants_customer(store):
    process("evt_15", "checkout.session.completed", {"customer": "cus_other", "subscription": "sub_9",
                                                     "client_reference_id": TENANT})
    assert store.tenants[TENANT]["stripe_customer_id"] == "cus_1"
    assert store.tenants[TENANT]["stripe_subscription_id"] == "sub_9"


def test_the_end_of_a_replaced_subscription_does_not_cancel_the_new_one(store):
    process("evt_16", "customer.subscription.created", subscription(id="sub_new"), created=T0)
    late_end = process("evt_17", "customer.subscription.deleted", subscription(id="sub_old", status="canceled"),
                       created=T0 + 5)
    assert late_end["ignored"] == "a subscription that is no longer the workspace's"
    assert store.tenants[TENANT]["subscription_status"] == "active"
