"""Stripe billing for the tenant (the paying customer), through the real ``stripe`` SDK.

- ``start_checkout`` creates the tenant's Stripe customer once and a subscription
  Checkout Session; return URLs must be on the frontend's origin (no open redirect).
- ``handle_webhook`` verifies the ``Stripe-Signature`` header, records each event id
  once (a redelivered event changes nothing), and keeps the control DB's
  ``tenants`` subscription columns and ``billing_history`` in step.
- Usage is gated by ``service.check_subscription`` (402 when canceled or unpaid).
"""
from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg

from funnel import db
from funnel.observability import logger, tracer
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal
from funnel.platform.secrets import get_secret
from funnel.platform.tenants import directory
from funnel.settings import get_settings

# Stripe subscription statuses -> ours (tenants.subscription_status CHECK constraint).
STATUS_MAP = {"trialing": "trial", "active": "active", "past_due": "past_due", "canceled": "canceled",
              "incomplete": "incomplete", "incomplete_expired": "canceled", "unpaid": "unpaid", "paused": "past_due"}
SUBSCRIPTION_EVENTS = {"customer.subscription.created", "customer.subscription.updated",
                       "customer.subscription.deleted"}
INVOICE_EVENTS = {"invoice.paid": "paid", "invoice.payment_failed": "failed"}


class WebhookRejected(ValidationFailed):
    status, title, type_suffix = 400, "Webhook rejected", "webhook-rejected"


def _stripe_secrets() -> dict:
    value = get_secret(get_settings().stripe_secret_id)
    return value if isinstance(value, dict) else {}


def _client():
    import stripe  # lazy: only billing paths pay for the SDK import

    settings = get_settings()
    api_key = _stripe_secrets().get("api_key")
    if not api_key:
        raise ValidationFailed("billing is not configured: the Stripe API key is missing")
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(api_key, base_addresses=base, max_network_retries=2)


def _on_frontend(url: str) -> str:
    origin = urlsplit(get_settings().frontend_origin)
    target = urlsplit(url)
    if (target.scheme, target.netloc) != (origin.scheme, origin.netloc):
        raise ValidationFailed(f"return URLs must be on {origin.scheme}://{origin.netloc}")
    return url


def start_checkout(principal: Principal, price_id: str, success_url: str, cancel_url: str) -> dict:
    _on_frontend(success_url)
    _on_frontend(cancel_url)
    client = _client()
    tenant = directory.get(principal.tenant_id)
    with db.control_transaction() as conn:
        row = conn.execute("SELECT stripe_customer_id FROM tenants WHERE id = %s FOR UPDATE",
                           (tenant.id,)).fetchone()
        customer_id = row["stripe_customer_id"]
        if customer_id is None:
            with tracer.subsegment("stripe.customers.create"):
                customer = client.v1.customers.create(params={
                    "name": tenant.name, "email": principal.email, "metadata": {"tenant_id": tenant.id}},
                    options={"idempotency_key": f"customer-{tenant.id}"})
            customer_id = customer.id
            conn.execute("UPDATE tenants SET stripe_customer_id = %s, updated_at = now() WHERE id = %s",
                         (customer_id, tenant.id))
    with tracer.subsegment("stripe.checkout.sessions.create"):
        session = client.v1.checkout.sessions.create(params={
            "mode": "subscription", "customer": customer_id, "client_reference_id": tenant.id,
            "line_items": [{"price": price_id, "quantity": 1}], "success_url": success_url, "cancel_url": cancel_url,
            "subscription_data": {"metadata": {"tenant_id": tenant.id}}})
    return {"checkout_session_id": session.id, "url": session.url, "customer_id": customer_id}


def _tenant_for(conn: psycopg.Connection, data: dict) -> str | None:
    metadata_tenant = (data.get("metadata") or {}).get("tenant_id") or data.get("client_reference_id")
    if metadata_tenant:
        row = conn.execute("SELECT id FROM tenants WHERE id = %s", (metadata_tenant,)).fetchone()
        if row:
            return row["id"]
    customer = data.get("customer")
    if customer:
        row = conn.execute("SELECT id FROM tenants WHERE stripe_customer_id = %s", (customer,)).fetchone()
        if row:
            return row["id"]
    return None


def _plan_of(subscription: dict) -> str:
    items = (subscription.get("items") or {}).get("data") or []
    price = items[0].get("price", {}) if items else {}
    return ((subscription.get("metadata") or {}).get("plan") or price.get("lookup_key") or price.get("nickname")
            or "paid")


def _apply(conn: psycopg.Connection, event_type: str, data: dict, tenant_id: str) -> None:
    if event_type == "checkout.session.completed":
        conn.execute("UPDATE tenants SET stripe_customer_id = coalesce(stripe_customer_id, %s), "
                     "stripe_subscription_id = %s, updated_at = now() WHERE id = %s",
                     (data.get("customer"), data.get("subscription"), tenant_id))
    elif event_type in SUBSCRIPTION_EVENTS:
        status = "canceled" if event_type.endswith("deleted") else STATUS_MAP.get(data.get("status"), "past_due")
        period_end = data.get("current_period_end") or (
            ((data.get("items") or {}).get("data") or [{}])[0].get("current_period_end"))
        conn.execute(
            "UPDATE tenants SET stripe_subscription_id = %s, subscription_status = %s, plan = %s, "
            "current_period_end = %s, updated_at = now() WHERE id = %s",
            (data.get("id"), status, _plan_of(data) if status != "canceled" else "free",
             datetime.fromtimestamp(period_end, UTC) if period_end else None, tenant_id))
    elif event_type in INVOICE_EVENTS:
        conn.execute(
            "INSERT INTO billing_history (tenant_id, stripe_invoice_id, amount, currency, status) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (stripe_invoice_id) DO UPDATE SET status = EXCLUDED.status",
            (tenant_id, data["id"], int(data.get("amount_paid") or data.get("amount_due") or 0),
             data.get("currency") or "jpy", INVOICE_EVENTS[event_type]))
        if event_type == "invoice.payment_failed":
            conn.execute("UPDATE tenants SET subscription_status = 'past_due', updated_at = now() WHERE id = %s "
                         "AND subscription_status = 'active'", (tenant_id,))


def handle_webhook(payload: bytes, signature: str | None) -> dict:
    import stripe

    secret = _stripe_secrets().get("webhook_secret")
    if not secret:
        raise WebhookRejected("the Stripe webhook secret is not configured")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise WebhookRejected("invalid Stripe signature or payload") from exc
    event_id, event_type = event["id"], event["type"]
    data = event["data"]["object"].to_dict() if hasattr(event["data"]["object"], "to_dict") else dict(
        event["data"]["object"])
    with db.control_transaction() as conn:
        tenant_id = _tenant_for(conn, data)
        inserted = conn.execute("INSERT INTO stripe_events (id, type, tenant_id) VALUES (%s, %s, %s) "
                                "ON CONFLICT (id) DO NOTHING RETURNING id",
                                (event_id, event_type, tenant_id)).fetchone()
        if inserted is None:
            return {"received": True, "duplicate": True}
        if tenant_id is None:
            logger.warning("Stripe event for no known tenant", extra={"event_id": event_id, "type": event_type})
            return {"received": True, "duplicate": False, "ignored": "unknown customer"}
        _apply(conn, event_type, data, tenant_id)
    directory.forget(tenant_id)
    return {"received": True, "duplicate": False}


def billing_overview(tenant_id: str) -> dict:
    with db.control_transaction() as conn:
        tenant = conn.execute("SELECT plan, subscription_status, current_period_end, stripe_customer_id IS NOT NULL "
                              "AS has_customer FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
        if tenant is None:
            raise NotFound("tenant not found")
        history = conn.execute("SELECT stripe_invoice_id, amount, currency, status, created_at FROM billing_history "
                               "WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 50", (tenant_id,)).fetchall()
    return {**tenant, "history": history}
