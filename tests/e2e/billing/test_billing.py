"""Stripe billing through the local runtime and the real stripe SDK (signed webhooks, checkout)."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from funnel import db
from funnel.platform.secrets import reset_clients
from funnel.settings import get_settings, reset_settings
from tests.support.stripe_server import StripeServer
from tests.support.tenants import new_pooled_tenant

WEBHOOK_SECRET = "whsec_test_funnel"


@pytest.fixture(scope="module")
def stripe_server(runtime):
    server = StripeServer().start()
    secrets = runtime.client("secretsmanager")
    secrets.put_secret_value(SecretId=get_settings().stripe_secret_id,
                             SecretString=json.dumps({"api_key": server.api_key, "webhook_secret": WEBHOOK_SECRET}))
    reset_clients()
    yield server
    server.stop()


@pytest.fixture
def stripe_api(stripe_server, monkeypatch):
    monkeypatch.setenv("FUNNEL_STRIPE_API_BASE", stripe_server.url)
    reset_settings()
    yield stripe_server
    monkeypatch.delenv("FUNNEL_STRIPE_API_BASE")
    reset_settings()


def _signed(event: dict, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    timestamp = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={signature}"


def _event(event_type: str, obj: dict) -> dict:
    return {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": event_type, "api_version": "2024-06-20",
            "created": int(time.time()), "data": {"object": obj}}


def _tenant_row(tenant_id: str) -> dict:
    with db.control_transaction() as conn:
        return conn.execute("SELECT plan, subscription_status, stripe_customer_id, stripe_subscription_id, "
                            "current_period_end FROM tenants WHERE id = %s", (tenant_id,)).fetchone()


def _post_webhook(api, payload: bytes, signature: str):
    return api.post("/v1/webhooks/stripe", content=payload,
                    headers={"content-type": "application/json", "stripe-signature": signature})


def test_checkout_creates_one_customer_and_refuses_foreign_return_urls(api, stripe_api):
    handle = new_pooled_tenant()
    origin = get_settings().frontend_origin
    body = {"price_id": "price_pro_monthly", "success_url": f"{origin}/billing/done",
            "cancel_url": f"{origin}/billing"}
    first = api.post("/v1/billing/checkout", headers=handle.headers, json=body)
    assert first.status_code == 201, first.text
    second = api.post("/v1/billing/checkout", headers=handle.headers, json=body)
    assert first.json()["customer_id"] == second.json()["customer_id"] == _tenant_row(handle.tenant_id)[
        "stripe_customer_id"]
    assert first.json()["url"].startswith("https://checkout.stripe.test/")
    assert sum(path == "/v1/customers" for _, path, form in stripe_api.requests
               if form.get("metadata[tenant_id]") == handle.tenant_id) == 1
    evil = api.post("/v1/billing/checkout", headers=handle.headers,
                    json={**body, "success_url": "https://evil.example.com/phish"})
    assert evil.status_code == 422 and evil.headers["content-type"] == "application/problem+json"


def test_signed_subscription_events_update_the_tenant_once_and_gate_generation(api, stripe_server):
    handle = new_pooled_tenant()
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    with db.control_transaction() as conn:
        conn.execute("UPDATE tenants SET stripe_customer_id = %s WHERE id = %s", (customer, handle.tenant_id))
    period_end = int(time.time()) + 30 * 86400
    active = _event("customer.subscription.updated", {
        "id": "sub_123", "object": "subscription", "customer": customer, "status": "active",
        "current_period_end": period_end, "metadata": {},
        "items": {"object": "list", "data": [{"price": {"id": "price_1", "lookup_key": "pro"}}]}})
    payload, signature = _signed(active)
    response = _post_webhook(api, payload, signature)
    assert response.status_code == 200 and response.json() == {"received": True, "duplicate": False}
    row = _tenant_row(handle.tenant_id)
    assert (row["subscription_status"], row["plan"], row["stripe_subscription_id"]) == ("active", "pro", "sub_123")
    assert int(row["current_period_end"].timestamp()) == period_end

    assert _post_webhook(api, payload, signature).json()["duplicate"] is True  # redelivery: recorded once
    with db.control_transaction() as conn:
        assert conn.execute("SELECT count(*) AS n FROM stripe_events WHERE id = %s",
                            (active["id"],)).fetchone()["n"] == 1

    invoice = _event("invoice.paid", {"id": f"in_{uuid.uuid4().hex[:8]}", "object": "invoice", "customer": customer,
                                      "amount_paid": 4980, "currency": "jpy"})
    assert _post_webhook(api, *_signed(invoice)).status_code == 200
    overview = api.get("/v1/billing", headers=handle.headers).json()
    assert overview["plan"] == "pro" and overview["history"][0]["amount"] == 4980

    canceled = _event("customer.subscription.deleted", {"id": "sub_123", "object": "subscription",
                                                        "customer": customer, "status": "canceled", "metadata": {}})
    assert _post_webhook(api, *_signed(canceled)).status_code == 200
    assert _tenant_row(handle.tenant_id)["subscription_status"] == "canceled"
    site = api.post("/v1/sites", headers=handle.headers, json={
        "slug": "blog", "wp_admin_url": "http://127.0.0.1:9/", "wp_username": "admin",
        "wp_api_token": "abcd efgh ijkl mnop"}).json()
    product = api.post("/v1/products", headers=handle.headers,
                       json={"url": "http://127.0.0.1:9/product", "site_id": site["id"]})
    assert product.status_code == 201, product.text
    refused = api.post(f"/v1/products/{product.json()['id']}/generate", headers=handle.headers, json={})
    assert refused.status_code == 402, refused.text


def test_tampered_stale_or_unsigned_webhooks_are_refused_and_change_nothing(api, stripe_server):
    handle = new_pooled_tenant()
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    with db.control_transaction() as conn:
        conn.execute("UPDATE tenants SET stripe_customer_id = %s WHERE id = %s", (customer, handle.tenant_id))
    event = _event("customer.subscription.updated", {"id": "sub_x", "object": "subscription", "customer": customer,
                                                     "status": "active", "metadata": {"plan": "pro"}})
    payload, signature = _signed(event)
    tampered = payload.replace(b'"active"', b'"unpaid"')
    stale_payload, stale_signature = _signed(event, timestamp=int(time.time()) - 3600)
    for body, header in ((tampered, signature), (payload, _signed(event, secret="whsec_wrong")[1]),
                         (stale_payload, stale_signature), (payload, "")):
        response = _post_webhook(api, body, header)
        assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert _tenant_row(handle.tenant_id)["subscription_status"] == "trial"
    with db.control_transaction() as conn:
        stored = conn.execute("SELECT count(*) AS n FROM stripe_events WHERE id = %s", (event["id"],)).fetchone()
        assert stored["n"] == 0
