"""Stripe billing through the local runtime, the real stripe SDK and localstripe (tests/support/localstripe.py):
every transition arrives as Stripe sends it, a signed webhook from localstripe to the local API's
/v1/webhooks/stripe. Checkout for a plan, the portal, plan change with proration, cancel and resume, the trial
and its end, a declined card to past_due and past the grace period, a paid invoice back to active, a refund,
the subscription's end; and replayed, out-of-order, badly signed and foreign events changing nothing."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta

import pytest
import stripe

from funnel import db
from funnel.billing import limits
from funnel.platform.secrets import reset_clients
from funnel.settings import get_settings, reset_settings
from tests.support.localstripe import LocalStripe
from tests.support.tenants import TenantHandle, new_pooled_tenant
from tests.support.waiting import wait_until

WEBHOOK_SECRET = "whsec_test_funnel_localstripe"
PRICES = {"funnel_starter_monthly": 980, "funnel_pro_monthly": 4980}  # funnel.billing.plans' lookup keys


@pytest.fixture(scope="module")
def localstripe(runtime):
    server = LocalStripe().start()
    try:
        secrets = runtime.client("secretsmanager")
        secrets.put_secret_value(SecretId=get_settings().stripe_secret_id, SecretString=json.dumps(
            {"api_key": server.api_key, "webhook_secret": WEBHOOK_SECRET}))
        reset_clients()
        server.register_webhook(f"{runtime.api_url}/v1/webhooks/stripe", WEBHOOK_SECRET)
        for price, amount in PRICES.items():
            server.sdk.v1.plans.create(params={"id": price, "amount": amount, "currency": "jpy", "interval": "month",
                                               "nickname": price, "product": {"name": price}})
        yield server
    finally:
        server.stop()


@pytest.fixture
def stripe_api(localstripe, monkeypatch):
    """The API talks to localstripe; a workspace's first checkout has no trial unless a test asks for one."""
    monkeypatch.setenv("FUNNEL_STRIPE_API_BASE", localstripe.url)
    monkeypatch.setenv("FUNNEL_BILLING_TRIAL_DAYS", "0")
    reset_settings()
    yield localstripe
    monkeypatch.delenv("FUNNEL_STRIPE_API_BASE")
    monkeypatch.delenv("FUNNEL_BILLING_TRIAL_DAYS")
    reset_settings()


def _tenant_row(tenant_id: str) -> dict:
    with db.control_transaction() as conn:
        return conn.execute("SELECT plan, subscription_status, stripe_customer_id, stripe_subscription_id, "
                            "stripe_price_id, current_period_end, cancel_at_period_end, trial_end, past_due_since, "
                            "subscription_event_at FROM tenants WHERE id = %s", (tenant_id,)).fetchone()


def _overview(api, handle: TenantHandle) -> dict:
    response = api.get("/v1/billing", headers=handle.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _subscribed(api, stripe_api: LocalStripe, handle: TenantHandle, plan: str = "starter") -> str:
    """A checkout for ``plan`` paid on Checkout's page, once Funnel has its state: the subscription id."""
    origin = get_settings().frontend_origin
    response = api.post("/v1/billing/checkout", headers=handle.headers, json={
        "plan": plan, "success_url": f"{origin}/billing/done", "cancel_url": f"{origin}/billing"})
    assert response.status_code == 201, response.text
    subscription_id = stripe_api.complete_checkout(response.json()["checkout_session_id"])["subscription"]
    stripe_api.wait_for("checkout.session.completed", response.json()["checkout_session_id"])
    assert _tenant_row(handle.tenant_id)["stripe_subscription_id"] == subscription_id
    return subscription_id


def _wait_for_state(handle: TenantHandle, what: str, done) -> dict:
    return wait_until(lambda: _tenant_row(handle.tenant_id), done, 20, what)


def _generation_refused(api, handle: TenantHandle):
    site = api.post("/v1/sites", headers=handle.headers, json={
        "slug": f"blog-{uuid.uuid4().hex[:6]}", "wp_admin_url": "http://127.0.0.1:9/", "wp_username": "admin",
        "wp_api_token": "abcd efgh ijkl mnop"}).json()
    product = api.post("/v1/products", headers=handle.headers,
                       json={"url": "http://127.0.0.1:9/product", "site_id": site["id"]})
    assert product.status_code == 201, product.text
    return api.post(f"/v1/products/{product.json()['id']}/generate", headers=handle.headers, json={})


def _signed(event: dict, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    timestamp = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={signature}"


def _post_webhook(api, payload: bytes, signature: str):
    return api.post("/v1/webhooks/stripe", content=payload,
                    headers={"content-type": "application/json", "stripe-signature": signature})


def _stripe_event(stripe_api: LocalStripe, event_id: str) -> dict:
    """The event as localstripe sent it (its JSON, to send again)."""
    return stripe_api.sdk.v1.events.retrieve(event_id).to_dict()


def test_checkout_for_a_plan_change_cancel_resume_and_the_end(api, stripe_api):
    handle, bystander = new_pooled_tenant(), new_pooled_tenant()
    bystander_before = _tenant_row(bystander.tenant_id)
    origin = get_settings().frontend_origin
    body = {"plan": "starter", "success_url": f"{origin}/billing/done", "cancel_url": f"{origin}/billing"}
    first = api.post("/v1/billing/checkout", headers=handle.headers, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["url"].startswith(stripe_api.url)  # the Checkout stand-in's page
    second = api.post("/v1/billing/checkout", headers=handle.headers, json=body)
    assert first.json()["customer_id"] == second.json()["customer_id"] == _tenant_row(handle.tenant_id)[
        "stripe_customer_id"]
    for wrong, loc in (({**body, "success_url": "https://evil.example.com/phish"}, ["body", "success_url"]),
                       ({**body, "plan": "free"}, ["body", "plan"]), ({**body, "price_id": "x"}, ["body"])):
        refused = api.post("/v1/billing/checkout", headers=handle.headers, json=wrong)
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"][0]["loc"] == loc, refused.text
    portal = api.post("/v1/billing/portal", headers=handle.headers, json={"return_url": f"{origin}/billing"})
    assert portal.status_code == 201 and portal.json()["url"].startswith(stripe_api.url), portal.text

    subscription_id = stripe_api.complete_checkout(first.json()["checkout_session_id"])["subscription"]
    stripe_api.wait_for("checkout.session.completed", first.json()["checkout_session_id"])
    overview = _overview(api, handle)
    assert (overview["subscription_status"], overview["plan"], overview["price_id"]) == (
        "active", "starter", "funnel_starter_monthly")
    assert overview["history"][0]["status"] == "paid" and overview["history"][0]["amount"] == 980
    assert overview["history"][0]["hosted_invoice_url"].startswith(stripe_api.url)
    again = api.post("/v1/billing/checkout", headers=handle.headers, json=body)
    assert again.status_code == 409, again.text  # one subscription: change its plan instead

    seen = len(stripe_api.deliveries())
    change = api.post("/v1/billing/subscription/change", headers=handle.headers, json={"plan": "pro"})
    assert change.status_code == 200 and change.json()["price_id"] == "funnel_pro_monthly", change.text
    stripe_api.wait_for("customer.subscription.updated", subscription_id, after=seen)
    assert (_tenant_row(handle.tenant_id)["plan"], _tenant_row(handle.tenant_id)["stripe_price_id"]) == (
        "pro", "funnel_pro_monthly")
    customer = first.json()["customer_id"]
    prorations = [item for item in stripe_api.sdk.v1.invoice_items.list(params={"customer": customer}).data
                  if item.proration]
    assert [item.amount for item in prorations] == [-980]  # Stripe's credit for the unused starter time

    seen = len(stripe_api.deliveries())
    cancel = api.post("/v1/billing/subscription/cancel", headers=handle.headers)
    assert cancel.status_code == 200 and cancel.json()["cancel_at_period_end"] is True, cancel.text
    stripe_api.wait_for("customer.subscription.updated", subscription_id, after=seen)
    overview = _overview(api, handle)
    assert overview["cancel_at_period_end"] is True and overview["subscription_status"] == "active"
    assert overview["usage_refused"] is None  # it works until the period ends
    seen = len(stripe_api.deliveries())
    resume = api.post("/v1/billing/subscription/resume", headers=handle.headers)
    assert resume.status_code == 200 and resume.json()["cancel_at_period_end"] is False, resume.text
    stripe_api.wait_for("customer.subscription.updated", subscription_id, after=seen)
    assert _overview(api, handle)["cancel_at_period_end"] is False

    seen = len(stripe_api.deliveries())
    stripe_api.sdk.v1.subscriptions.cancel(subscription_id)  # the period ended after a cancellation
    stripe_api.wait_for("customer.subscription.deleted", subscription_id, after=seen)
    row = _tenant_row(handle.tenant_id)
    assert (row["subscription_status"], row["plan"]) == ("canceled", "free")
    refused = _generation_refused(api, handle)
    assert refused.status_code == 402 and refused.headers["content-type"] == "application/problem+json"
    assert "canceled" in refused.json()["detail"]
    for path in ("change", "cancel", "resume"):
        answer = api.post(f"/v1/billing/subscription/{path}", headers=handle.headers,
                          **({"json": {"plan": "starter"}} if path == "change" else {}))
        assert answer.status_code == 409, answer.text
    assert _tenant_row(bystander.tenant_id) == bystander_before  # another workspace's events never touch it


def test_a_declined_card_is_past_due_then_refused_after_the_grace_period_until_paid(api, stripe_api):
    handle = new_pooled_tenant()
    subscription_id = _subscribed(api, stripe_api, handle)
    customer = _tenant_row(handle.tenant_id)["stripe_customer_id"]
    sdk = stripe_api.sdk
    declining = sdk.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer})
    sdk.v1.customers.update(customer, params={"invoice_settings": {"default_payment_method": declining.id}})
    renewal = sdk.v1.invoices.create(params={"customer": customer, "subscription": subscription_id})
    seen = len(stripe_api.deliveries())
    with pytest.raises(stripe.CardError):
        sdk.v1.invoices.pay(renewal.id)
    stripe_api.wait_for("invoice.payment_failed", renewal.id, after=seen)
    stripe_api.wait_for("customer.subscription.updated", subscription_id, after=seen)
    row = _tenant_row(handle.tenant_id)
    assert row["subscription_status"] == "past_due" and row["past_due_since"] is not None
    overview = _overview(api, handle)
    assert overview["usage_refused"] is None  # within the grace period: Stripe retries the card
    assert overview["grace_ends_at"] is not None
    assert limits.subscription_allows_use(handle.tenant_id) is None

    grace = timedelta(days=get_settings().billing_past_due_grace_days, minutes=1)
    with db.control_transaction() as conn:
        conn.execute("UPDATE tenants SET past_due_since = past_due_since - %s WHERE id = %s",
                     (grace, handle.tenant_id))
    assert "grace period ended" in limits.subscription_allows_use(handle.tenant_id)
    assert "grace period ended" in _overview(api, handle)["usage_refused"]
    refused = _generation_refused(api, handle)
    assert refused.status_code == 402 and "past due" in refused.json()["detail"], refused.text
    sending = api.post(f"/v1/email-campaigns/{uuid.uuid4()}/send", headers=handle.headers)  # refused before lookup
    assert sending.status_code == 402 and "past due" in sending.json()["detail"], sending.text

    paying = sdk.v1.payment_methods.attach("pm_card_visa", params={"customer": customer})
    sdk.v1.customers.update(customer, params={"invoice_settings": {"default_payment_method": paying.id}})
    seen = len(stripe_api.deliveries())
    sdk.v1.invoices.pay(renewal.id)
    stripe_api.wait_for("invoice.paid", renewal.id, after=seen)
    row = _tenant_row(handle.tenant_id)
    assert (row["subscription_status"], row["past_due_since"]) == ("active", None)
    assert limits.subscription_allows_use(handle.tenant_id) is None

    charge = sdk.v1.invoices.retrieve(renewal.id)["charge"]["id"]
    seen = len(stripe_api.deliveries())
    sdk.v1.refunds.create(params={"charge": charge, "amount": 500})
    stripe_api.wait_for("charge.refunded", charge, after=seen)
    page = api.get("/v1/billing/invoices", headers=handle.headers, params={"limit": 1})
    assert page.status_code == 200, page.text
    refunded = page.json()["items"][0]
    assert (refunded["stripe_invoice_id"], refunded["status"], refunded["refunded_amount"]) == (
        renewal.id, "refunded", 500)
    assert refunded["invoice_pdf"].startswith(stripe_api.url)
    rest = api.get("/v1/billing/invoices", headers=handle.headers,
                   params={"limit": 1, "cursor": page.json()["next_cursor"]}).json()
    assert [i["status"] for i in rest["items"]] == ["paid"] and rest["next_cursor"] is None


def test_a_trial_ends_with_the_owner_told_and_the_first_invoice(api, stripe_api, monkeypatch):
    monkeypatch.setenv("FUNNEL_BILLING_TRIAL_DAYS", "14")
    reset_settings()
    handle = new_pooled_tenant()
    subscription_id = _subscribed(api, stripe_api, handle)
    row = _wait_for_state(handle, "the trial", lambda r: r["subscription_status"] == "trial")
    assert row["trial_end"] is not None and _overview(api, handle)["history"] == []

    seen = len(stripe_api.deliveries())
    stripe_api.trial_will_end(subscription_id)
    stripe_api.wait_for("customer.subscription.trial_will_end", subscription_id, after=seen)
    with db.tenant_transaction(handle.tenant_id) as conn:
        told = conn.execute("SELECT recipient_id, delivery_method, title FROM notifications "
                            "WHERE notification_category = 'billing' ORDER BY delivery_method").fetchall()
    assert [(str(n["recipient_id"]), n["delivery_method"]) for n in told] == [
        (handle.owner_id, "EMAIL"), (handle.owner_id, "IN_APP")]
    assert f"{row['trial_end']:%Y-%m-%d}" in told[0]["title"]

    seen = len(stripe_api.deliveries())
    stripe_api.sdk.v1.subscriptions.update(subscription_id, params={"trial_end": "now"})
    stripe_api.wait_for("customer.subscription.updated", subscription_id, after=seen)
    assert _tenant_row(handle.tenant_id)["subscription_status"] == "active"
    assert [i["status"] for i in _overview(api, handle)["history"]] == ["paid"]


def test_replayed_older_and_badly_signed_events_change_nothing(api, stripe_api):
    handle = new_pooled_tenant()
    subscription_id = _subscribed(api, stripe_api, handle)
    created = next(d for d in stripe_api.deliveries()
                   if d["type"] == "customer.subscription.created" and d["object_id"] == subscription_id)
    seen = len(stripe_api.deliveries())
    assert api.post("/v1/billing/subscription/cancel", headers=handle.headers).status_code == 200
    stripe_api.wait_for("customer.subscription.updated", subscription_id, after=seen)
    state = _tenant_row(handle.tenant_id)
    assert state["cancel_at_period_end"] is True

    replay = _stripe_event(stripe_api, created["id"])  # delivered again, as Stripe retries
    answer = _post_webhook(api, *_signed(replay))
    assert answer.status_code == 200 and answer.json() == {"received": True, "duplicate": True}
    older = {**replay, "id": f"evt_{uuid.uuid4().hex[:14]}", "created": state["subscription_event_at"].timestamp() - 60}
    older["created"] = int(older["created"])
    answer = _post_webhook(api, *_signed(older))  # an event from before the cancellation, delivered late
    assert answer.status_code == 200 and answer.json()["ignored"] == "older than the state already applied"
    assert _tenant_row(handle.tenant_id) == state

    tampered = {**older, "id": f"evt_{uuid.uuid4().hex[:14]}", "created": int(time.time())}
    payload, signature = _signed(tampered)
    stale_payload, stale_signature = _signed(tampered, timestamp=int(time.time()) - 3600)
    for body, header in ((payload.replace(b'"active"', b'"unpaid"'), signature),
                         (payload, _signed(tampered, secret="whsec_wrong")[1]),
                         (stale_payload, stale_signature), (payload, "")):
        response = _post_webhook(api, body, header)
        assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert _tenant_row(handle.tenant_id) == state
    with db.control_transaction() as conn:
        stored = conn.execute("SELECT count(*) AS n FROM stripe_events WHERE id = %s", (tampered["id"],)).fetchone()
    assert stored["n"] == 0
