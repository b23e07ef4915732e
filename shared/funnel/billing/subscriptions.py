"""Stripe billing for the tenant (the paying customer), through the real ``stripe`` SDK.

- ``start_checkout`` creates the tenant's Stripe customer once and a subscription Checkout Session (the first
  one with a trial of ``billing_trial_days``); ``portal_session`` opens Stripe's Customer Portal; return URLs
  must be on the frontend's origin (no open redirect).
- ``change_plan`` moves the subscription to another price (Stripe prorates), ``cancel`` / ``resume`` set
  ``cancel_at_period_end``. Funnel's state follows from the webhooks these cause, never from the answer.
- ``handle_webhook`` verifies the ``Stripe-Signature`` header (with ``stripe_webhook_tolerance_seconds``),
  records each event id once (a redelivered event changes nothing), applies an event only when it is not older
  than the state applied (``tenants.subscription_event_at``; a canceled subscription stays canceled), and keeps
  the control DB's ``tenants`` subscription columns and ``billing_history`` in step.
- Usage is gated by ``limits.check_subscription`` (402 when canceled or unpaid, or past due beyond the grace
  period counted from ``past_due_since``).
SQL (control DB) is in ``store_subscriptions``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from funnel import db
from funnel.billing import limits, plans, store_subscriptions
from funnel.billing.models import (
    BillingOverview,
    CheckoutSession,
    PortalSession,
    StripeWebhookReceipt,
    SubscriptionChange,
)
from funnel.db import Connection, Row
from funnel.observability import logger, tracer
from funnel.platform import stripe_api
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal
from funnel.platform.store_deletion import owner_ids
from funnel.platform.tenants import directory
from funnel.settings import get_settings

# Stripe subscription statuses -> ours (tenants.subscription_status CHECK constraint).
STATUS_MAP = {"trialing": "trial", "active": "active", "past_due": "past_due", "canceled": "canceled",
              "incomplete": "incomplete", "incomplete_expired": "canceled", "unpaid": "unpaid", "paused": "past_due"}
SUBSCRIPTION_EVENTS = {"customer.subscription.created", "customer.subscription.updated",
                       "customer.subscription.deleted", "customer.subscription.trial_will_end"}
INVOICE_EVENTS = {"invoice.paid": "paid", "invoice.payment_failed": "failed"}
# A subscription in these statuses is live: a second Checkout would make two; change its plan instead.
LIVE_STATUSES = ("trial", "active", "past_due", "incomplete", "unpaid")
OVERVIEW_INVOICES = 10
NOTIFICATION_CATEGORY = "billing"

AfterCommit = Callable[[], None]


class WebhookRejected(ValidationFailed):
    status, title, type_suffix = 400, "Webhook rejected", "webhook-rejected"


def _client():
    return stripe_api.client(ValidationFailed("billing is not configured: the Stripe API key is missing"))


def _on_frontend(url: str, field: str) -> str:
    origin = urlsplit(get_settings().frontend_origin)
    target = urlsplit(url)
    if (target.scheme, target.netloc) != (origin.scheme, origin.netloc):
        raise ValidationFailed.at(["body", field], f"must be on {origin.scheme}://{origin.netloc}")
    return url


def _at(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def _price_for(client: Any, plan: str | None, price_id: str | None) -> tuple[str, str]:
    """The Stripe price to subscribe to and the plan name its subscription's metadata carries (empty for a bare
    price id: Stripe drops a metadata key set to "", and the price's lookup key names the plan)."""
    if plan is None:
        assert price_id is not None  # the body has exactly one of the two
        return price_id, ""
    lookup_key = plans.PLANS[plan].price_lookup_key if plan in plans.PLANS else None
    if lookup_key is None:
        paid = sorted(name for name, entry in plans.PLANS.items() if entry.price_lookup_key)
        raise ValidationFailed.at(["body", "plan"], f"not a paid plan (one of {paid})")
    with tracer.subsegment("stripe.prices.list"):
        prices = client.v1.prices.list(params={"lookup_keys": [lookup_key], "active": True, "limit": 1})
    if not prices.data:
        raise ValidationFailed.at(["body", "plan"], f"Stripe has no active price with lookup key {lookup_key!r}")
    return prices.data[0].id, plan


# ---------------------------------------------------------------- Checkout, the portal
def start_checkout(principal: Principal, plan: str | None, price_id: str | None, success_url: str,
                   cancel_url: str) -> CheckoutSession:
    _on_frontend(success_url, "success_url")
    _on_frontend(cancel_url, "cancel_url")
    client = _client()
    price_id, plan_name = _price_for(client, plan, price_id)
    tenant = directory.get(principal.tenant_id)
    with db.control_transaction() as conn:
        row = store_subscriptions.lock_customer_id(conn, tenant.id)
        if row is None:  # the directory knew the tenant a moment ago: deleted in between
            raise NotFound("tenant not found")
        if row["stripe_subscription_id"] and row["subscription_status"] in LIVE_STATUSES:
            raise Conflict("the workspace has a subscription: change its plan (POST /v1/billing/subscription/change)")
        customer_id = row["stripe_customer_id"]
        first_subscription = row["stripe_subscription_id"] is None
        if customer_id is None:
            with tracer.subsegment("stripe.customers.create"):
                customer = client.v1.customers.create(params={
                    "name": tenant.name, "email": principal.email, "metadata": {"tenant_id": tenant.id}},
                    options={"idempotency_key": f"customer-{tenant.id}"})
            customer_id = customer.id
            store_subscriptions.set_customer_id(conn, tenant.id, customer_id)
    subscription_data: dict[str, Any] = {"metadata": {"tenant_id": tenant.id, "plan": plan_name}}
    trial_days = get_settings().billing_trial_days
    if first_subscription and trial_days:  # one trial per workspace
        subscription_data["trial_period_days"] = trial_days
    with tracer.subsegment("stripe.checkout.sessions.create"):
        session = client.v1.checkout.sessions.create(params={
            "mode": "subscription", "customer": customer_id, "client_reference_id": tenant.id,
            "line_items": [{"price": price_id, "quantity": 1}], "success_url": success_url, "cancel_url": cancel_url,
            "subscription_data": subscription_data})
    return CheckoutSession(checkout_session_id=session.id, url=session.url, customer_id=customer_id)


def portal_session(principal: Principal, return_url: str) -> PortalSession:
    """Stripe's Customer Portal for the tenant's customer (409 before the first checkout made one)."""
    _on_frontend(return_url, "return_url")
    with db.control_transaction() as conn:
        row = store_subscriptions.subscription_of(conn, principal.tenant_id)
    if row is None:
        raise NotFound("tenant not found")
    if row["stripe_customer_id"] is None:
        raise Conflict("the workspace has no Stripe customer yet: start a checkout first")
    client = _client()
    with tracer.subsegment("stripe.billing_portal.sessions.create"):
        session = client.v1.billing_portal.sessions.create(params={
            "customer": row["stripe_customer_id"], "return_url": return_url})
    return PortalSession(url=session.url)


# ---------------------------------------------------------------- plan change, cancel, resume
def _live_subscription(tenant_id: str) -> str:
    with db.control_transaction() as conn:
        row = store_subscriptions.subscription_of(conn, tenant_id)
    if row is None:
        raise NotFound("tenant not found")
    if row["stripe_subscription_id"] is None or row["subscription_status"] not in LIVE_STATUSES:
        raise Conflict("the workspace has no subscription to change: start a checkout")
    return str(row["stripe_subscription_id"])


def _change(subscription: Any) -> SubscriptionChange:
    data = subscription.to_dict() if hasattr(subscription, "to_dict") else dict(subscription)
    return SubscriptionChange(subscription_id=data["id"], stripe_status=data.get("status") or "",
                              price_id=_price_of(data), cancel_at_period_end=bool(data.get("cancel_at_period_end")),
                              current_period_end=_at(_period_end(data)))


def change_plan(principal: Principal, plan: str | None, price_id: str | None) -> SubscriptionChange:
    """The subscription's one item moves to the plan's price; Stripe prorates what was paid for the old one."""
    subscription_id = _live_subscription(principal.tenant_id)
    client = _client()
    price_id, plan_name = _price_for(client, plan, price_id)
    with tracer.subsegment("stripe.subscriptions.retrieve"):
        current = client.v1.subscriptions.retrieve(subscription_id)
    items = current["items"]["data"]
    with tracer.subsegment("stripe.subscriptions.update"):
        updated = client.v1.subscriptions.update(subscription_id, params={
            "items": [{"id": items[0]["id"], "price": price_id}], "proration_behavior": "create_prorations",
            "metadata": {"plan": plan_name}})
    return _change(updated)


def set_cancel_at_period_end(principal: Principal, cancel: bool) -> SubscriptionChange:
    """Cancel at the end of the paid period (it works until then), or resume a cancellation asked for."""
    subscription_id = _live_subscription(principal.tenant_id)
    client = _client()
    with tracer.subsegment("stripe.subscriptions.update"):
        updated = client.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": cancel})
    return _change(updated)


# ---------------------------------------------------------------- webhooks
def _tenant_for(conn: Connection, data: dict[str, Any]) -> str | None:
    """The tenant an event is about: its metadata (or checkout reference) when that names a tenant, else the
    tenant of its Stripe customer."""
    metadata_tenant = (data.get("metadata") or {}).get("tenant_id") or data.get("client_reference_id")
    if metadata_tenant and store_subscriptions.tenant_exists(conn, metadata_tenant):
        return str(metadata_tenant)
    customer = data.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return store_subscriptions.tenant_of_customer(conn, customer) if customer else None


def _first_item(subscription: dict[str, Any]) -> dict[str, Any]:
    items = (subscription.get("items") or {}).get("data") or []
    return items[0] if items else {}


def _price_of(subscription: dict[str, Any]) -> str | None:
    item = _first_item(subscription)
    price = item.get("price") or item.get("plan") or {}
    return price.get("id") if isinstance(price, dict) else None


def _plan_of(subscription: dict[str, Any]) -> str:
    item = _first_item(subscription)
    price = item.get("price") or item.get("plan") or {}
    return ((subscription.get("metadata") or {}).get("plan") or price.get("lookup_key") or price.get("nickname")
            or "paid")


def _period_end(subscription: dict[str, Any]) -> int | None:
    return subscription.get("current_period_end") or _first_item(subscription).get("current_period_end")


def _id_of(value: Any) -> str | None:
    """An expandable field: an id, or the object itself."""
    return value.get("id") if isinstance(value, dict) else value


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills: ``subscription`` (older API versions) or ``parent``'s (newer)."""
    parent = (invoice.get("parent") or {}).get("subscription_details") or {}
    return _id_of(invoice.get("subscription") or parent.get("subscription"))


def _superseded(clock: Row, subscription_id: str | None, event_at: datetime, ending: bool) -> str | None:
    """Why an event about ``subscription_id`` must change nothing, or None to apply it: an event older than the
    state applied, an event about a subscription Stripe has canceled (final: it never comes back), or the end
    of a subscription that is no longer the tenant's (a new checkout replaced it)."""
    current = clock["stripe_subscription_id"]
    if current is not None and subscription_id is not None and current != subscription_id and ending:
        return "a subscription that is no longer the workspace's"
    if current == subscription_id and clock["subscription_status"] == "canceled":
        return "the subscription is canceled"
    last = clock["subscription_event_at"]
    if last is not None and event_at < last:
        return "older than the state already applied"
    return None


def _notify_owners(tenant_id: str, title: str, body: str) -> AfterCommit:
    def send() -> None:
        from funnel.notifications.service import notify  # lazy: only a trial's end pays for the import

        with db.tenant_transaction(tenant_id) as conn:
            owners = owner_ids(conn)
        if not owners:
            logger.warning("billing notice for a workspace without owners", extra={"tenant_id": tenant_id})
            return
        notify(tenant_id, recipient_user_ids=owners, category=NOTIFICATION_CATEGORY, title=title, body=body,
               channels=("IN_APP", "EMAIL"), priority="HIGH", related_entity_type="workspace",
               related_entity_id=tenant_id, action_url=f"{get_settings().frontend_origin}/settings/billing",
               action_label="Billing")
    return send


def _apply_subscription(conn: Connection, event_type: str, data: dict[str, Any], tenant_id: str,
                        event_at: datetime) -> tuple[str | None, list[AfterCommit]]:
    clock = store_subscriptions.lock_subscription_clock(conn, tenant_id)
    assert clock is not None  # the tenant's row was found a moment ago in this transaction
    ending = event_type.endswith("deleted") or data.get("status") in ("canceled", "incomplete_expired")
    why_not = _superseded(clock, data.get("id"), event_at, ending)
    if why_not:
        return why_not, []
    status = "canceled" if event_type.endswith("deleted") else STATUS_MAP.get(data.get("status") or "", "past_due")
    past_due_since = None
    if status in ("past_due", "unpaid"):  # the grace period counts from the first failure, not the latest event
        past_due_since = clock["past_due_since"] or event_at
    store_subscriptions.set_subscription(
        conn, tenant_id, subscription_id=data.get("id"), status=status,
        plan=_plan_of(data) if status != "canceled" else "free", price_id=_price_of(data),
        current_period_end=_at(_period_end(data)), cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        trial_end=_at(data.get("trial_end")), past_due_since=past_due_since, event_at=event_at)
    after: list[AfterCommit] = []
    if event_type == "customer.subscription.trial_will_end" and data.get("trial_end"):
        ends = _at(data["trial_end"])
        after.append(_notify_owners(tenant_id, f"Your trial ends on {ends:%Y-%m-%d}",
                                    "Add a payment method in billing to keep sending and generating after the "
                                    "trial; without one the subscription is canceled when the trial ends."))
    return None, after


def _apply_invoice(conn: Connection, event_type: str, data: dict[str, Any], tenant_id: str,
                   event_at: datetime) -> str | None:
    outcome = INVOICE_EVENTS[event_type]
    store_subscriptions.upsert_invoice(
        conn, tenant_id, invoice_id=data["id"],
        amount=int(data.get("amount_paid") or data.get("amount_due") or 0), currency=data.get("currency") or "jpy",
        status=outcome, hosted_invoice_url=data.get("hosted_invoice_url"), invoice_pdf=data.get("invoice_pdf"),
        charge_id=_id_of(data.get("charge")), payment_intent_id=_id_of(data.get("payment_intent")))
    clock = store_subscriptions.lock_subscription_clock(conn, tenant_id)
    assert clock is not None
    subscription_id, current = _invoice_subscription(data), clock["stripe_subscription_id"]
    if current is None or subscription_id not in (None, current):
        return None  # no subscription yet, or another one's invoice: recorded; the standing is the subscription's
    if _superseded(clock, clock["stripe_subscription_id"], event_at, ending=False):
        return None
    status = clock["subscription_status"]
    if outcome == "failed" and status in ("active", "trial"):
        store_subscriptions.set_payment_standing(conn, tenant_id, status="past_due",
                                                 past_due_since=clock["past_due_since"] or event_at,
                                                 event_at=event_at)
    elif outcome == "paid" and status == "past_due":
        store_subscriptions.set_payment_standing(conn, tenant_id, status="active", past_due_since=None,
                                                 event_at=event_at)
    return None


def _apply_refund(conn: Connection, data: dict[str, Any], tenant_id: str) -> str | None:
    invoice_id = store_subscriptions.refund_invoice(
        conn, tenant_id, invoice_id=_id_of(data.get("invoice")), charge_id=data["id"],
        payment_intent_id=_id_of(data.get("payment_intent")),
        refunded_amount=int(data.get("amount_refunded") or 0))
    return None if invoice_id else "a charge of no invoice of the workspace"


def _apply(conn: Connection, event_type: str, data: dict[str, Any], tenant_id: str,
           event_at: datetime) -> tuple[str | None, list[AfterCommit]]:
    """Apply one event: why it changed nothing (or None), and what to do once its transaction committed."""
    if event_type == "checkout.session.completed":
        clock = store_subscriptions.lock_subscription_clock(conn, tenant_id)
        assert clock is not None
        why_not = _superseded(clock, data.get("subscription"), event_at, ending=False)
        if why_not is None:
            store_subscriptions.record_checkout(conn, tenant_id, _id_of(data.get("customer")),
                                                _id_of(data.get("subscription")), event_at)
        return why_not, []
    if event_type in SUBSCRIPTION_EVENTS:
        return _apply_subscription(conn, event_type, data, tenant_id, event_at)
    if event_type in INVOICE_EVENTS:
        return _apply_invoice(conn, event_type, data, tenant_id, event_at), []
    if event_type == "charge.refunded":
        return _apply_refund(conn, data, tenant_id), []
    return None, []


def handle_webhook(payload: bytes, signature: str | None) -> StripeWebhookReceipt:
    """Verify a Stripe delivery's signature, then process its event (once per event id)."""
    import stripe

    secret = stripe_api.stripe_secrets().get("webhook_secret")
    if not secret:
        raise WebhookRejected("the Stripe webhook secret is not configured")
    try:
        event = stripe.Webhook.construct_event(payload, signature or "", secret,
                                               tolerance=get_settings().stripe_webhook_tolerance_seconds)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise WebhookRejected("invalid Stripe signature or payload") from exc
    obj = event["data"]["object"]
    return process_event(event["id"], event["type"], obj.to_dict() if hasattr(obj, "to_dict") else dict(obj),
                         created=int(event["created"]))


def process_event(event_id: str, event_type: str, data: dict[str, Any], *, created: int) -> StripeWebhookReceipt:
    """A verified event: recorded once by id (a redelivery changes nothing), then applied to its tenant unless
    it is older than what was applied (``created`` is the event's time at Stripe)."""
    with db.control_transaction() as conn:
        tenant_id = _tenant_for(conn, data)
        if not store_subscriptions.record_event(conn, event_id, event_type, tenant_id):
            return StripeWebhookReceipt(received=True, duplicate=True)
        if tenant_id is None:
            logger.warning("Stripe event for no known tenant", extra={"event_id": event_id, "type": event_type})
            return StripeWebhookReceipt(received=True, duplicate=False, ignored="unknown customer")
        ignored, after_commit = _apply(conn, event_type, data, tenant_id, datetime.fromtimestamp(created, UTC))
    directory.forget(tenant_id)  # the directory caches the tenant's row, subscription included
    for action in after_commit:
        action()
    if ignored:
        logger.info("Stripe event changed nothing", extra={"event_id": event_id, "type": event_type,
                                                           "tenant_id": tenant_id, "why": ignored})
        return StripeWebhookReceipt(received=True, duplicate=False, ignored=ignored)
    return StripeWebhookReceipt(received=True, duplicate=False)


# ---------------------------------------------------------------- the overview, invoices
def billing_overview(tenant_id: str) -> BillingOverview:
    with db.control_transaction() as conn:
        tenant = store_subscriptions.billing_summary(conn, tenant_id)
        if tenant is None:
            raise NotFound("tenant not found")
        history = store_subscriptions.latest_invoices(conn, tenant_id, OVERVIEW_INVOICES)
    status, since = tenant["subscription_status"], tenant["past_due_since"]
    return BillingOverview.model_validate({
        **tenant, "history": history,
        "grace_ends_at": limits.grace_ends_at(since) if status == "past_due" else None,
        "usage_refused": limits.refusal_for(status, since)})


def invoices(tenant_id: str, cursor: str | None, limit: int) -> Page:
    with db.control_transaction() as conn:
        return store_subscriptions.invoices_page(conn, tenant_id, cursor=cursor, limit=limit)
