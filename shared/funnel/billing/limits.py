"""What the tenant's subscription allows: the gate every consuming path calls before it uses anything.

This is billing's public module (the import contract lets every area use it); the rest of the billing package
is its own.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from funnel import db
from funnel.billing import store_subscriptions, usage
from funnel.billing.plans import Metric
from funnel.billing.usage import PlanLimitReached  # the 402 a refusal raises: other areas catch it from here
from funnel.db import Connection
from funnel.platform.errors import PaymentRequired
from funnel.settings import get_settings

# Subscription statuses that stop sending and generation; trial and past_due (within its grace period) still work.
BLOCKING_STATUSES = ("canceled", "unpaid")


# ---------------------------------------------------------------- the subscription's standing (issue #19 items 1-2)
def grace_ends_at(past_due_since: datetime | None) -> datetime | None:
    """When a past_due subscription stops working: ``billing_past_due_grace_days`` after its first failed payment."""
    if past_due_since is None:
        return None
    return past_due_since + timedelta(days=get_settings().billing_past_due_grace_days)


def refusal_for(status: str | None, past_due_since: datetime | None, now: datetime | None = None) -> str | None:
    """Why a subscription in this state may not send or generate, or None when it may."""
    if status in BLOCKING_STATUSES:
        return f"the subscription is {status}: update billing to send and generate"
    ends = grace_ends_at(past_due_since) if status == "past_due" else None
    if ends is not None and (now or datetime.now(UTC)) >= ends:
        return (f"the subscription is past due since {past_due_since:%Y-%m-%d} and its grace period ended "
                f"{ends:%Y-%m-%d}: pay the open invoice to send and generate")
    return None


def subscription_allows_use(tenant_id: str) -> str | None:
    """Why the tenant's subscription refuses sending and generation now (canceled, unpaid, or past due beyond the
    grace period), or None when it allows them (an unknown tenant too: its own lookup answers 404)."""
    with db.control_transaction() as conn:
        standing = store_subscriptions.subscription_standing(conn, tenant_id)
    if standing is None:
        return None
    return refusal_for(standing["subscription_status"], standing["past_due_since"])


def check_subscription(tenant_id: str) -> None:
    """402 while the tenant's subscription refuses use (``subscription_allows_use``)."""
    refusal = subscription_allows_use(tenant_id)
    if refusal is not None:
        raise PaymentRequired(refusal)


# ---------------------------------------------------------------- the plan's limits (issue #19 items 3-4)
# A plan's limits (``funnel.billing.plans``) are taken at the point of use, in the transaction of the thing counted
# (``funnel.billing.usage`` says how); a refusal is ``PlanLimitReached``, a 402 whose problem body names
# ``limit``, ``limit_value``, ``used``, ``plan`` and ``resets_at``. Routes document it with PLAN_LIMIT_402.
PLAN_LIMIT_402 = ("The subscription refuses use (canceled, unpaid, past due beyond its grace period), or the plan's "
                  "limit is reached: then `type` ends in `plan-limit-reached` and the problem names `limit` (articles, "
                  "form_sends, emails, shortlink_clicks, seats, llm_spend_usd), `limit_value`, `used`, `plan` and "
                  "`resets_at` (ISO 8601, the first moment of next month in UTC; null for seats)")


def use(conn: Connection, tenant_id: str, metric: Metric, amount: int = 1) -> None:
    """Take ``amount`` of the month's ``metric`` in ``conn``'s transaction, the one creating what it counts;
    PlanLimitReached (402) when the plan's limit would be passed, and the transaction creates nothing."""
    usage.use(conn, tenant_id, metric, amount)


def take(conn: Connection, tenant_id: str, metric: Metric, amount: int = 1) -> PlanLimitReached | None:
    """``use`` for a worker that records the refusal instead of raising it: the refusal, or None (taken). A unit
    taken for something that then does not happen (a suppressed address, a form not submitted) goes back with
    ``give_back``, as ``funnel.email.delivery`` does for each message."""
    return usage.take(conn, tenant_id, metric, amount)


def give_back(conn: Connection, metric: Metric, amount: int = 1) -> None:
    """Return units taken for something that did not happen after all (a suppressed address, a refused send)."""
    usage.give_back(conn, metric, amount)


def take_seat(conn: Connection, tenant_id: str) -> None:
    """One more enabled user, in the transaction creating it; PlanLimitReached when the seats are all taken."""
    usage.take_seat(conn, tenant_id)


def check_plan_allows(tenant_id: str, metric: Metric) -> None:
    """402 when the month's ``metric`` is used up already: the gate before queueing work whose every unit is
    taken later on its own (a campaign's e-mails), so a request that cannot send anything is refused at once."""
    usage.check_available(tenant_id, metric)


def check_llm_spend(tenant_id: str) -> None:
    """402 once the month's LLM spend has reached the plan's cap (before a call: its cost is known only after)."""
    usage.check_available(tenant_id, "llm_spend_usd")


def record_llm_spend(tenant_id: str, cost_usd: float) -> None:
    """Add what an LLM call of the tenant cost (the registry's unit, USD) to the month's spend."""
    usage.record_spend(tenant_id, cost_usd)
