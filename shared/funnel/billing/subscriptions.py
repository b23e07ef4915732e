"""Stripe billing for the tenant (the paying customer), through the real ``stripe`` SDK.

- ``start_checkout`` creates the tenant's Stripe customer once and a subscription
  Checkout Session; return URLs must be on the frontend's origin (no open redirect).
- ``handle_webhook`` verifies the ``Stripe-Signature`` header, records each event id
  once (a redelivered event changes nothing), and keeps the control DB's
  ``tenants`` subscription columns and ``billing_history`` in step.
- Usage is gated by ``limits.check_subscription`` (402 when canceled or unpaid).
SQL (control DB) is in ``store_subscriptions``.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from funnel import db
from funnel.billing import store_subscriptions
from funnel.billing.models import BillingOverview, CheckoutSession, StripeWebhookReceipt
from funnel.db import Connection
from funnel.observability import logger, tracer
from funnel.platform import stripe_api
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal
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


def _client():
    return stripe_api.client(ValidationFailed("billing is not configured: the Stripe API key is missing"))


def _on_frontend(url: str) -> str:
    origin = urlsplit(get_settings().frontend_origin)
    target = urlsplit(url)
    if (target.scheme, target.netloc) != (origin.scheme, origin.netloc):
        raise ValidationFailed(f"return URLs must be on {origin.scheme}://{origin.netloc}")
    return url


def start_checkout(principal: Principal, price_id: str, success_url: str, cancel_url: str) -> CheckoutSession:
    _on_frontend(success_url)
    _on_frontend(cancel_url)
    client = _client()
    tenant = directory.get(principal.tenant_id)
    with db.control_transaction() as conn:
        row = store_subscriptions.lock_customer_id(conn, tenant.id)
        if row is None:  # the directory knew the tenant a moment ago: deleted in between
            raise NotFound("tenant not found")
        customer_id = row["stripe_customer_id"]
        if customer_id is None:
            with tracer.subsegment("stripe.customers.create"):
                customer = client.v1.customers.create(params={
                    "name": tenant.name, "email": principal.email, "metadata": {"tenant_id": tenant.id}},
                    options={"idempotency_key": f"customer-{tenant.id}"})
            customer_id = customer.id
            store_subscriptions.set_customer_id(conn, tenant.id, customer_id)
    with tracer.subsegment("stripe.checkout.sessions.create"):
        session = client.v1.checkout.sessions.create(params={
            "mode": "subscription", "customer": customer_id, "client_reference_id": tenant.id,
            "line_items": [{"price": price_id, "quantity": 1}], "success_url": success_url, "cancel_url": cancel_url,
            "subscription_data": {"metadata": {"tenant_id": tenant.id}}})
    return CheckoutSession(checkout_session_id=session.id, url=session.url, customer_id=customer_id)


def _tenant_for(conn: Connection, data: dict[str, Any]) -> str | None:
    """The tenant an event is about: its metadata (or checkout reference) when that names a tenant, else the
    tenant of its Stripe customer."""
    metadata_tenant = (data.get("metadata") or {}).get("tenant_id") or data.get("client_reference_id")
    if metadata_tenant and store_subscriptions.tenant_exists(conn, metadata_tenant):
        return str(metadata_tenant)
    customer = data.get("customer")
    return store_subscriptions.tenant_of_customer(conn, customer) if customer else None


def _plan_of(subscription: dict[str, Any]) -> str:
    items = (subscription.get("items") or {}).get("data") or []
    price = items[0].get("price", {}) if items else {}
    return ((subscription.get("metadata") or {}).get("plan") or price.get("lookup_key") or price.get("nickname")
            or "paid")


def _apply(conn: Connection, event_type: str, data: dict[str, Any], tenant_id: str) -> None:
    if event_type == "checkout.session.completed":
        store_subscriptions.record_checkout(conn, tenant_id, data.get("customer"), data.get("subscription"))
    elif event_type in SUBSCRIPTION_EVENTS:
        status = "canceled" if event_type.endswith("deleted") else STATUS_MAP.get(data.get("status") or "", "past_due")
        period_end = data.get("current_period_end") or (
            ((data.get("items") or {}).get("data") or [{}])[0].get("current_period_end"))
        store_subscriptions.set_subscription(conn, tenant_id, subscription_id=data.get("id"), status=status,
                                       plan=_plan_of(data) if status != "canceled" else "free",
                                       current_period_end=datetime.fromtimestamp(period_end, UTC) if period_end
                                       else None)
    elif event_type in INVOICE_EVENTS:
        store_subscriptions.upsert_invoice(conn, tenant_id, invoice_id=data["id"],
                                     amount=int(data.get("amount_paid") or data.get("amount_due") or 0),
                                     currency=data.get("currency") or "jpy", status=INVOICE_EVENTS[event_type])
        if event_type == "invoice.payment_failed":
            store_subscriptions.active_to_past_due(conn, tenant_id)


def handle_webhook(payload: bytes, signature: str | None) -> StripeWebhookReceipt:
    """Verify a Stripe delivery's signature, then process its event (once per event id)."""
    import stripe

    secret = stripe_api.stripe_secrets().get("webhook_secret")
    if not secret:
        raise WebhookRejected("the Stripe webhook secret is not configured")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise WebhookRejected("invalid Stripe signature or payload") from exc
    obj = event["data"]["object"]
    return process_event(event["id"], event["type"], obj.to_dict() if hasattr(obj, "to_dict") else dict(obj))


def process_event(event_id: str, event_type: str, data: dict[str, Any]) -> StripeWebhookReceipt:
    """A verified event: recorded once by id (a redelivery changes nothing), then applied to its tenant."""
    with db.control_transaction() as conn:
        tenant_id = _tenant_for(conn, data)
        if not store_subscriptions.record_event(conn, event_id, event_type, tenant_id):
            return StripeWebhookReceipt(received=True, duplicate=True)
        if tenant_id is None:
            logger.warning("Stripe event for no known tenant", extra={"event_id": event_id, "type": event_type})
            return StripeWebhookReceipt(received=True, duplicate=False, ignored="unknown customer")
        _apply(conn, event_type, data, tenant_id)
    directory.forget(tenant_id)  # the directory caches the tenant's row, subscription included
    return StripeWebhookReceipt(received=True, duplicate=False)


def billing_overview(tenant_id: str) -> BillingOverview:
    with db.control_transaction() as conn:
        tenant = store_subscriptions.billing_summary(conn, tenant_id)
        if tenant is None:
            raise NotFound("tenant not found")
        history = store_subscriptions.latest_invoices(conn, tenant_id)
    return BillingOverview.model_validate({**tenant, "history": history})
