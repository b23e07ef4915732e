"""The plan catalogue and the rules of ``funnel.billing.usage`` over an in-memory fake of its store: no database.
What the SQL does under concurrency is tests/integration/billing/test_plan_limits.py's."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from funnel.billing import limits, plans, usage
from funnel.platform import llm

TENANT = "acme"
OWNER = "0b7c4a52-0000-4000-8000-000000000001"


class FakeUsageStore:
    """``store_usage`` over a dict (metric, month) -> row; ``enabled`` users for seats."""

    def __init__(self, enabled: int = 1):
        self.rows: dict[tuple[str, date], dict] = {}
        self.enabled = enabled

    def ensure_counter(self, conn, metric, period):
        self.rows.setdefault((metric, period), {"metric": metric, "period_start": period, "used": Decimal(0),
                                                "notified_percent": 0})

    def add_within(self, conn, metric, period, amount, limit):
        row = self.rows[(metric, period)]
        if limit is not None and row["used"] + amount > limit:
            return None
        row["used"] += amount
        return dict(row)

    def lock_counter(self, conn, metric, period):
        return dict(self.rows[(metric, period)])

    def set_used(self, conn, metric, period, used):
        self.rows[(metric, period)]["used"] = used
        return dict(self.rows[(metric, period)])

    def give_back(self, conn, metric, period, amount):
        row = self.rows[(metric, period)]
        row["used"] = max(row["used"] - amount, Decimal(0))

    def raise_notified(self, conn, metric, period, percent):
        row = self.rows[(metric, period)]
        if row["notified_percent"] >= percent:
            return False
        row["notified_percent"] = percent
        return True

    def enabled_users(self, conn):
        return self.enabled


@pytest.fixture
def fake(monkeypatch):
    store, told = FakeUsageStore(), []
    monkeypatch.setattr(usage, "store_usage", store)
    monkeypatch.setattr(usage, "plan_of", lambda tenant_id: plans.PLANS["free"])
    monkeypatch.setattr(usage.store_deletion, "owner_ids", lambda conn: [OWNER])
    monkeypatch.setattr(usage, "notify", lambda tenant_id, **kw: told.append(kw))
    return SimpleNamespace(store=store, told=told)


# ---------------------------------------------------------------- the catalogue
def test_every_plan_limits_every_metric_and_is_found_by_name_or_lookup_key():
    for plan in plans.PLANS.values():
        assert set(plan.limits) == set(plans.METRICS)
    assert plans.plan_named("pro").name == "pro"
    assert plans.plan_named("funnel_starter_monthly").name == "starter"
    assert plans.plan_of_lookup_key("funnel_pro_monthly") is plans.PLANS["pro"]
    assert plans.plan_named("enterprise-typo").name == "free" and plans.plan_named(None).name == "free"


def test_paid_plans_allow_more_than_free_of_everything():
    free, starter, pro = (plans.PLANS[n] for n in ("free", "starter", "pro"))
    for metric in plans.METRICS:
        assert free.limit(metric) < starter.limit(metric) < pro.limit(metric)
        assert plans.PLANS["enterprise"].limit(metric) is None  # an operator's plan: nothing limited


def test_an_unlimited_metric_is_still_counted(fake, monkeypatch):
    monkeypatch.setattr(usage, "plan_of", lambda tenant_id: plans.PLANS["enterprise"])
    usage.use(None, TENANT, "emails", 1_000_000)
    assert fake.store.rows[("emails", usage.period_start())]["used"] == 1_000_000 and not fake.told


def test_a_month_resets_at_the_first_moment_of_the_next_one():
    assert usage.period_start(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == date(2026, 12, 1)
    assert usage.resets_at(date(2026, 12, 1)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert usage.resets_at(date(2026, 2, 1)) == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("used, limit, reached", [(0, 10, 0), (7, 10, 0), (8, 10, 80), (9, 10, 80), (10, 10, 100),
                                                  (12, 10, 100), (5, None, 0)])
def test_the_threshold_reached(used, limit, reached):
    assert usage.threshold_reached(Decimal(used), None if limit is None else Decimal(limit)) == reached


# ---------------------------------------------------------------- taking units
def test_a_refusal_takes_nothing_and_names_limit_value_used_and_reset(fake):
    usage.use(None, TENANT, "articles", 29)
    with pytest.raises(limits.PlanLimitReached) as refused:
        usage.use(None, TENANT, "articles", 2)
    period = usage.period_start()
    assert refused.value.status == 402 and refused.value.metric == "articles"
    assert refused.value.extra == {"limit": "articles", "limit_value": 30, "used": 29, "plan": "free",
                                   "resets_at": usage.resets_at(period).isoformat()}
    assert fake.store.rows[("articles", period)]["used"] == 29
    usage.use(None, TENANT, "articles", 1)  # the last one still fits
    assert usage.take(None, TENANT, "articles") is not None


def test_owners_are_told_once_at_80_and_once_at_100_percent(fake):
    for _ in range(30):
        usage.use(None, TENANT, "articles")
    usage.take(None, TENANT, "articles")  # refused: nothing more to tell
    assert [t["title"].split(":")[1].strip() for t in fake.told] == [
        "80 % of the free plan's limit used", "the free plan's limit is reached"]
    assert all(t["recipient_user_ids"] == [OWNER] and t["category"] == "billing" for t in fake.told)


def test_a_unit_given_back_can_be_taken_again(fake):
    usage.use(None, TENANT, "emails", 10_000)
    usage.give_back(None, "emails")
    assert usage.take(None, TENANT, "emails") is None


def test_seats_count_the_enabled_users(fake):
    fake.store.enabled = 24
    usage.take_seat(None, TENANT)  # the 25th
    fake.store.enabled = 25
    with pytest.raises(limits.PlanLimitReached) as refused:
        usage.take_seat(None, TENANT)
    assert refused.value.extra["limit"] == "seats" and refused.value.extra["resets_at"] is None


# ---------------------------------------------------------------- the LLM gate
def test_an_llm_call_over_the_spend_cap_is_refused_before_the_model_is_called(monkeypatch):
    choice = SimpleNamespace(is_offline=False, label="paid/model")
    monkeypatch.setattr(llm, "resolve_model", lambda step, settings=None: choice)
    monkeypatch.setattr(llm, "bound_tenant", lambda: TENANT)

    def over_cap(tenant_id):
        raise limits.PlanLimitReached("free", "llm_spend_usd", Decimal(5), Decimal("5.01"), None)

    monkeypatch.setattr(llm.limits, "check_llm_spend", over_cap)
    monkeypatch.setattr(llm, "_api_key", lambda choice: pytest.fail("the model must not be called"))
    with pytest.raises(limits.PlanLimitReached, match="LLM spend"):
        llm.complete("write_article", [{"role": "user", "content": "hi"}])
