"""Billing API: the tenant's subscription and invoices, Stripe Checkout, and Stripe's webhook."""
from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import Field

from funnel import db
from funnel.api.contract import problem_response, problems
from funnel.api.deps import Admin, StrictModel
from funnel.api.routing import add_concern_routes
from funnel.billing import routes_usage, subscriptions
from funnel.billing.models import BillingOverview, CheckoutSession, StripeWebhookReceipt
from funnel.platform import audit

router = APIRouter(prefix="/v1")


class CheckoutBody(StrictModel):
    price_id: str = Field(min_length=1, max_length=200)
    success_url: str = Field(min_length=1, max_length=2000)
    cancel_url: str = Field(min_length=1, max_length=2000)


@router.post("/billing/checkout", status_code=201, tags=["billing"], responses=problems(404))
def start_checkout(body: CheckoutBody, principal: Admin) -> CheckoutSession:
    """A subscription checkout; the return URLs must be on the frontend's origin (422 otherwise, and when
    billing is not configured)."""
    session = subscriptions.start_checkout(principal, body.price_id, body.success_url, body.cancel_url)
    with db.tenant_transaction(principal.tenant_id) as conn:
        audit.record(conn, principal, "billing.checkout", "tenant", principal.tenant_id,
                     {"price_id": body.price_id, "checkout_session_id": session.checkout_session_id})
    return session


@router.get("/billing", tags=["billing"], responses=problems(404))
def get_billing(principal: Admin) -> BillingOverview:
    return subscriptions.billing_overview(principal.tenant_id)


@router.post("/webhooks/stripe", tags=["billing"], response_model_exclude_unset=True,
             responses={400: problem_response(400, "a missing or invalid Stripe-Signature, a stale or tampered "
                                                   "payload, or no webhook secret configured")})
async def stripe_webhook(request: Request) -> StripeWebhookReceipt:
    """Stripe calls this; the signature (not a token) authenticates it."""
    return subscriptions.handle_webhook(await request.body(), request.headers.get("stripe-signature"))


add_concern_routes(router, routes_usage.router)  # GET /v1/usage (plans and limits: routes_usage)
