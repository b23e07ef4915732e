"""Billing API: the tenant's subscription and invoices, Stripe Checkout and Customer Portal, plan changes,
cancellation and resumption, and Stripe's webhook. Every call but the webhook is an admin's, and audited."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from funnel import db
from funnel.api.contract import Page, problem_response, problems
from funnel.api.deps import Admin, Cursor, Limit, page_of
from funnel.api.routing import add_concern_routes
from funnel.billing import routes_usage, subscriptions
from funnel.billing.models import (
    BillingInvoice,
    BillingOverview,
    CheckoutBody,
    CheckoutSession,
    PlanChangeBody,
    PortalBody,
    PortalSession,
    StripeWebhookReceipt,
    SubscriptionChange,
)
from funnel.platform import audit
from funnel.platform.principal import Principal

router = APIRouter(prefix="/v1")


def _audit(principal: Principal, action: str, details: dict[str, Any]) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        audit.record(conn, principal, action, "tenant", principal.tenant_id, details)


@router.post("/billing/checkout", status_code=201, tags=["billing"], responses=problems(404, 409))
def start_checkout(body: CheckoutBody, principal: Admin) -> CheckoutSession:
    """A subscription checkout; the return URLs must be on the frontend's origin (422 otherwise, and when
    billing is not configured); 409 while the workspace has a live subscription (change its plan instead)."""
    session = subscriptions.start_checkout(principal, body.plan, body.price_id, body.success_url, body.cancel_url)
    _audit(principal, "billing.checkout", {"plan": body.plan, "price_id": body.price_id,
                                           "checkout_session_id": session.checkout_session_id})
    return session


@router.post("/billing/portal", status_code=201, tags=["billing"], responses=problems(404, 409))
def open_portal(body: PortalBody, principal: Admin) -> PortalSession:
    """Stripe's Customer Portal (cards, invoices); 409 before the workspace has a Stripe customer."""
    session = subscriptions.portal_session(principal, body.return_url)
    _audit(principal, "billing.portal", {})
    return session


@router.post("/billing/subscription/change", tags=["billing"], responses=problems(404, 409))
def change_plan(body: PlanChangeBody, principal: Admin) -> SubscriptionChange:
    """Move the subscription to another price; Stripe prorates. 409 when there is no subscription to change."""
    change = subscriptions.change_plan(principal, body.plan, body.price_id)
    _audit(principal, "billing.plan_change", {"plan": body.plan, "price_id": change.price_id,
                                              "subscription_id": change.subscription_id})
    return change


@router.post("/billing/subscription/cancel", tags=["billing"], responses=problems(404, 409))
def cancel_subscription(principal: Admin) -> SubscriptionChange:
    """Cancel at the end of the paid period: everything works until `current_period_end`."""
    change = subscriptions.set_cancel_at_period_end(principal, True)
    _audit(principal, "billing.cancel", {"subscription_id": change.subscription_id})
    return change


@router.post("/billing/subscription/resume", tags=["billing"], responses=problems(404, 409))
def resume_subscription(principal: Admin) -> SubscriptionChange:
    """Take back a cancellation asked for, before the period ends."""
    change = subscriptions.set_cancel_at_period_end(principal, False)
    _audit(principal, "billing.resume", {"subscription_id": change.subscription_id})
    return change


@router.get("/billing", tags=["billing"], responses=problems(404))
def get_billing(principal: Admin) -> BillingOverview:
    return subscriptions.billing_overview(principal.tenant_id)


@router.get("/billing/invoices", tags=["billing"])
def list_invoices(principal: Admin, limit: Limit = 20, cursor: Cursor = None) -> Page[BillingInvoice]:
    """The workspace's invoices, newest first, with Stripe's page and PDF of each."""
    return page_of(BillingInvoice, subscriptions.invoices(principal.tenant_id, cursor, limit))


@router.post("/webhooks/stripe", tags=["billing"], response_model_exclude_unset=True,
             responses={400: problem_response(400, "a missing or invalid Stripe-Signature, a stale or tampered "
                                                   "payload, or no webhook secret configured")})
async def stripe_webhook(request: Request) -> StripeWebhookReceipt:
    """Stripe calls this; the signature (not a token) authenticates it."""
    return subscriptions.handle_webhook(await request.body(), request.headers.get("stripe-signature"))


add_concern_routes(router, routes_usage.router)  # GET /v1/usage (plans and limits: routes_usage)
