"""The plan's limits at the point of use, and the usage the frontend shows (``GET /v1/usage``).

A consuming path takes what it uses from its counter in the same tenant transaction as the thing it counts
(``take``/``use``): the counter row's lock orders concurrent consumers, so the last unit goes to exactly one of
them, and a refusal (``PlanLimitReached``, a 402) rolls back with everything the transaction created. Months are
calendar months in UTC; the counters of a month start at zero on its first day. Seats are the enabled users
(``take_seat``). LLM spend is known only once a call is answered: a call is refused once the month's spend has
reached the cap (``check_available``), and what each call cost is added afterwards (``record_spend``), so the
last call of a month may take the spend past the cap by its own cost.

The owners are told when a counter reaches 80 % and 100 % of its limit, once per counter and month
(``notified_percent``), in the transaction of the use that crossed it (in-app and e-mail, category ``billing``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from funnel import db
from funnel.billing import plans, store_usage
from funnel.billing.plans import Metric, Plan
from funnel.db import Connection, Row
from funnel.notifications.service import notify
from funnel.platform import store_deletion
from funnel.platform.errors import PaymentRequired
from funnel.settings import get_settings

NOTIFY_AT_PERCENT = (80, 100)
NOTIFICATION_CATEGORY = "billing"
LABELS: dict[str, str] = {"articles": "articles", "form_sends": "form sends", "emails": "e-mails",
                          "shortlink_clicks": "tracked shortlink clicks", "seats": "seats",
                          "llm_spend_usd": "LLM spend (USD)"}


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


class PlanLimitReached(PaymentRequired):
    """A 402 naming the limit: ``limit`` (the counter), ``limit_value``, ``used``, ``plan`` and ``resets_at``
    (ISO 8601; null for seats, which do not reset) are members of the problem body."""
    title, type_suffix = "Plan limit reached", "plan-limit-reached"

    def __init__(self, plan: str, metric: Metric, limit: Decimal, used: Decimal, resets_at: datetime | None):
        when = f"; it resets at {resets_at.isoformat()}" if resets_at else "; disable a user or change the plan"
        super().__init__(f"the {plan} plan's limit of {_number(limit)} {LABELS[metric]}"
                         f"{' a month' if resets_at else ''} is reached ({_number(used)} used){when}",
                         limit=metric, limit_value=_number(limit), used=_number(used), plan=plan,
                         resets_at=resets_at.isoformat() if resets_at else None)
        self.metric = metric


# ---------------------------------------------------------------- the month
def period_start(now: datetime | None = None) -> date:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return date(now.year, now.month, 1)


def resets_at(period: date) -> datetime:
    """The first moment of the next month (UTC)."""
    year, month = (period.year + 1, 1) if period.month == 12 else (period.year, period.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def plan_of(tenant_id: str) -> Plan:
    return plans.plan_named(db.directory.get(tenant_id).plan)


def threshold_reached(used: Decimal, limit: Decimal | None) -> int:
    """The highest of NOTIFY_AT_PERCENT that ``used`` has reached (0: none, or no limit)."""
    if limit is None or limit <= 0:
        return 0
    return max((p for p in NOTIFY_AT_PERCENT if used * 100 >= limit * p), default=0)


# ---------------------------------------------------------------- taking units
def take(conn: Connection, tenant_id: str, metric: Metric, amount: int | Decimal = 1) -> PlanLimitReached | None:
    """Take ``amount`` of the month's ``metric`` in ``conn``'s transaction, or return why not (nothing taken)."""
    plan = plan_of(tenant_id)
    limit, period, amount = plan.limit(metric), period_start(), Decimal(amount)
    store_usage.ensure_counter(conn, metric, period)
    row = store_usage.add_within(conn, metric, period, amount, limit)
    if row is None:
        assert limit is not None  # only a limit refuses
        return PlanLimitReached(plan.name, metric, limit, store_usage.lock_counter(conn, metric, period)["used"],
                                resets_at(period))
    _tell_owners_if_crossed(conn, tenant_id, plan, row)
    return None


def use(conn: Connection, tenant_id: str, metric: Metric, amount: int | Decimal = 1) -> None:
    """``take``, raising the refusal (the caller's transaction rolls back with it)."""
    refusal = take(conn, tenant_id, metric, amount)
    if refusal is not None:
        raise refusal


def give_back(conn: Connection, metric: Metric, amount: int | Decimal = 1) -> None:
    """Return what ``take`` took for something that did not happen after all (this month's counter)."""
    store_usage.give_back(conn, metric, period_start(), Decimal(amount))


def take_seat(conn: Connection, tenant_id: str) -> None:
    """One more enabled user, in the transaction that creates it: 402 when the plan's seats are all taken. The
    month's seats row is locked first, so two concurrent creations count each other."""
    plan = plan_of(tenant_id)
    limit, period = plan.limit("seats"), period_start()
    store_usage.ensure_counter(conn, "seats", period)
    store_usage.lock_counter(conn, "seats", period)
    taken = Decimal(store_usage.enabled_users(conn))
    if limit is not None and taken + 1 > limit:
        raise PlanLimitReached(plan.name, "seats", limit, taken, None)
    _tell_owners_if_crossed(conn, tenant_id, plan, store_usage.set_used(conn, "seats", period, taken + 1))


def check_available(tenant_id: str, metric: Metric) -> None:
    """402 when the month's ``metric`` is used up already (a look, no lock): the gate before work whose amount is
    known only afterwards (an LLM call), or before queueing work each unit of which takes its own (a campaign)."""
    plan = plan_of(tenant_id)
    limit, period = plan.limit(metric), period_start()
    if limit is None:
        return
    with db.tenant_transaction(tenant_id) as conn:
        used = next((row["used"] for row in store_usage.month_counters(conn, period) if row["metric"] == metric),
                    Decimal(0))
    if used >= limit:
        raise PlanLimitReached(plan.name, metric, limit, used, resets_at(period))


def record_spend(tenant_id: str, cost_usd: float) -> None:
    """Add what an LLM call cost to the month's spend (its own transaction: the call has happened)."""
    if cost_usd <= 0:
        return
    plan, period = plan_of(tenant_id), period_start()
    with db.tenant_transaction(tenant_id) as conn:
        store_usage.ensure_counter(conn, "llm_spend_usd", period)
        row = store_usage.add_within(conn, "llm_spend_usd", period, Decimal(str(cost_usd)), None)
        assert row is not None  # no limit, no refusal
        _tell_owners_if_crossed(conn, tenant_id, plan, row)


def _tell_owners_if_crossed(conn: Connection, tenant_id: str, plan: Plan, row: Row) -> None:
    metric = row["metric"]
    limit = plan.limit(metric)
    reached = threshold_reached(row["used"], limit)
    if reached <= row["notified_percent"] or not store_usage.raise_notified(conn, metric, row["period_start"], reached):
        return
    owners = store_deletion.owner_ids(conn)
    if not owners:
        return
    monthly = metric in plans.MONTHLY
    title = (f"{LABELS[metric].capitalize()}: {reached} % of the {plan.name} plan's limit used"
             if reached < 100 else f"{LABELS[metric].capitalize()}: the {plan.name} plan's limit is reached")
    body = (f"{_number(row['used'])} of {_number(limit)} {LABELS[metric]} used"
            + (f" this month; the counter resets at {resets_at(row['period_start']).isoformat()}." if monthly else ".")
            + (" Further use is refused until then, or change the plan." if reached >= 100 else ""))
    notify(tenant_id, recipient_user_ids=owners, category=NOTIFICATION_CATEGORY, title=title, body=body,
           channels=("IN_APP", "EMAIL"), priority="HIGH" if reached >= 100 else "NORMAL",
           notification_type="WARNING", related_entity_type="workspace", related_entity_id=tenant_id,
           action_url=f"{get_settings().frontend_origin}/settings/billing", action_label="See usage", conn=conn)


# ---------------------------------------------------------------- what the frontend shows
@dataclass(frozen=True)
class Counter:
    metric: Metric
    used: Decimal
    limit: Decimal | None
    resets_at: datetime | None


def counters(tenant_id: str) -> tuple[Plan, date, list[Counter]]:
    """Every metric of the plan with this month's use (zero before the first), its limit and its reset."""
    plan, period = plan_of(tenant_id), period_start()
    with db.tenant_transaction(tenant_id) as conn:
        used = {row["metric"]: row["used"] for row in store_usage.month_counters(conn, period)}
        used["seats"] = Decimal(store_usage.enabled_users(conn))
    return plan, period, [Counter(m, used.get(m, Decimal(0)), plan.limit(m),
                                  resets_at(period) if m in plans.MONTHLY else None) for m in plans.METRICS]
