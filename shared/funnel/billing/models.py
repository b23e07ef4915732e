"""Response models of the billing API: the tenant's subscription, its invoices, Checkout, Stripe's webhook receipt.

Billing belongs to the tenant (the paying customer), not to a user: its rows are in the control DB
(``tenants`` subscription columns, ``billing_history``, ``stripe_events``; see ``store_subscriptions``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from funnel.api.contract import Out

SubscriptionStatus = Literal["trial", "active", "past_due", "canceled", "incomplete", "unpaid"]
InvoiceStatus = Literal["paid", "failed", "refunded"]


class CheckoutSession(Out):
    """A Stripe Checkout Session for a subscription: send the user to `url`."""

    checkout_session_id: str
    url: str = Field(description="the Stripe-hosted checkout page")
    customer_id: str = Field(description="the tenant's Stripe customer (created once)")


class BillingInvoice(Out):
    stripe_invoice_id: str
    amount: int = Field(description="in the currency's smallest unit (yen for jpy)")
    currency: str = Field(description="ISO 4217, lower case, e.g. `jpy`")
    status: InvoiceStatus
    created_at: datetime


class BillingOverview(Out):
    plan: str = Field(description="`free`, or the plan of the active subscription")
    subscription_status: SubscriptionStatus = Field(description="`canceled` and `unpaid` block generation (402)")
    current_period_end: datetime | None
    has_customer: bool = Field(description="whether the tenant has a Stripe customer (has started a checkout)")
    history: list[BillingInvoice] = Field(description="the latest 50 invoices, newest first")


class StripeWebhookReceipt(Out):
    """What Stripe is told: 2xx means the event need not be delivered again."""

    received: bool
    duplicate: bool = Field(description="true when the event was already processed (nothing changed again)")
    ignored: str | None = Field(default=None, description="only present when the event changed nothing because "
                                                          "it names no known tenant (`unknown customer`)")
