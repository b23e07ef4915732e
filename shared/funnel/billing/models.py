"""Request bodies and response models of the billing API: the tenant's subscription, its invoices, Checkout, the
Customer Portal, plan changes and cancellations, Stripe's webhook receipt.

Billing belongs to the tenant (the paying customer), not to a user: its rows are in the control DB
(``tenants`` subscription columns, ``billing_history``, ``stripe_events``; see ``store_subscriptions``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field, model_validator

from funnel.api.contract import Out
from funnel.api.deps import StrictModel

SubscriptionStatus = Literal["trial", "active", "past_due", "canceled", "incomplete", "unpaid"]
InvoiceStatus = Literal["paid", "failed", "refunded"]
# A Stripe price id (price_...), or a legacy plan id: Stripe takes either where a price is asked for.
PriceId = Field(default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_\-]+$")
ReturnUrl = Field(min_length=1, max_length=2000, description="on the frontend's origin (422 otherwise)")


class PlanChoice(StrictModel):
    """A plan by its name (`funnel.billing.plans`: its Stripe price is found by the plan's lookup key), or a
    Stripe price by id; exactly one of the two."""

    plan: str | None = Field(default=None, min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_]*$",
                             description="a paid plan's name, e.g. `pro`")
    price_id: str | None = PriceId

    @model_validator(mode="after")
    def _one_of(self) -> PlanChoice:
        if (self.plan is None) == (self.price_id is None):
            raise ValueError("give exactly one of `plan` and `price_id`")
        return self


class CheckoutBody(PlanChoice):
    success_url: str = ReturnUrl
    cancel_url: str = ReturnUrl


class PortalBody(StrictModel):
    return_url: str = ReturnUrl


class PlanChangeBody(PlanChoice):
    pass


class CheckoutSession(Out):
    """A Stripe Checkout Session for a subscription: send the user to `url`."""

    checkout_session_id: str
    url: str = Field(description="the Stripe-hosted checkout page")
    customer_id: str = Field(description="the tenant's Stripe customer (created once)")


class PortalSession(Out):
    """A Stripe Customer Portal session: send the user to `url` (cards, invoices, cancellation at Stripe)."""

    url: str = Field(description="the Stripe-hosted portal, valid for a few minutes")


class SubscriptionChange(Out):
    """What Stripe answered to a plan change, a cancellation or a resumption. Funnel's own state
    (`GET /v1/billing`) follows when Stripe's webhook about it arrives, within seconds."""

    subscription_id: str
    stripe_status: str = Field(description="Stripe's status of the subscription (`active`, `trialing`, ...)")
    price_id: str | None
    cancel_at_period_end: bool = Field(description="true: it ends at `current_period_end` unless resumed")
    current_period_end: datetime | None


class BillingInvoice(Out):
    id: UUID
    stripe_invoice_id: str
    amount: int = Field(description="in the currency's smallest unit (yen for jpy)")
    currency: str = Field(description="ISO 4217, lower case, e.g. `jpy`")
    status: InvoiceStatus = Field(description="`refunded` once any of it was refunded (`refunded_amount`)")
    refunded_amount: int = Field(description="refunded so far, in the currency's smallest unit")
    hosted_invoice_url: str | None = Field(description="Stripe's page of the invoice (pay, download)")
    invoice_pdf: str | None
    created_at: datetime


class BillingOverview(Out):
    plan: str = Field(description="`free`, or the plan of the active subscription")
    subscription_status: SubscriptionStatus = Field(description="`canceled` and `unpaid` block sending and "
                                                                "generation (402), `past_due` after its grace "
                                                                "period")
    price_id: str | None = Field(description="the Stripe price of the subscription")
    current_period_end: datetime | None
    cancel_at_period_end: bool = Field(description="a cancellation asked for: it ends at `current_period_end`")
    trial_end: datetime | None = Field(description="when the Stripe trial ends (status `trial`)")
    past_due_since: datetime | None = Field(description="the first failed payment of a past_due subscription")
    grace_ends_at: datetime | None = Field(description="past_due: when sending and generation stop")
    usage_refused: str | None = Field(description="why sending and generation are refused now, or null")
    has_customer: bool = Field(description="whether the tenant has a Stripe customer (has started a checkout)")
    history: list[BillingInvoice] = Field(description="the latest 10 invoices, newest first; all of them: "
                                                      "`GET /v1/billing/invoices`")


class StripeWebhookReceipt(Out):
    """What Stripe is told: 2xx means the event need not be delivered again."""

    received: bool
    duplicate: bool = Field(description="true when the event was already processed (nothing changed again)")
    ignored: str | None = Field(default=None, description="only present when the event changed nothing: it names "
                                                          "no known tenant (`unknown customer`), or is older "
                                                          "than the state already applied")
