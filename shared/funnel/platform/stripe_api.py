"""The deployment's Stripe: its keys (Secrets Manager ``stripe_secret_id``: ``{"api_key", "webhook_secret"}``) and
a client of the real ``stripe`` SDK (StripeDepsLayer) at ``stripe_api_base`` when set (tests: a local
Stripe-compatible server), else Stripe itself. Billing (checkout, webhooks) and the deletion purge (a deleted
workspace's subscription is canceled) use the same client."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from funnel.platform.secrets import get_secret
from funnel.settings import get_settings

if TYPE_CHECKING:
    import stripe


def stripe_secrets() -> dict[str, Any]:
    value = get_secret(get_settings().stripe_secret_id)
    return value if isinstance(value, dict) else {}


def client(missing_key: Exception) -> stripe.StripeClient:
    """A Stripe client with the deployment's API key; raises ``missing_key`` when there is none."""
    import stripe  # lazy: only billing paths and purges of paying workspaces pay for the SDK import

    api_key = stripe_secrets().get("api_key")
    if not api_key:
        raise missing_key
    base = get_settings().stripe_api_base
    return stripe.StripeClient(api_key, base_addresses={"api": base} if base else None, max_network_retries=2)
