"""The plans a tenant can be on, as data: what each allows per calendar month (UTC) and its Stripe price.

``tenants.plan`` (control DB) names the plan: Checkout's webhook writes the price's lookup key or the plan name
there, so a plan is found by either. A name the catalogue does not know gets the free plan's limits (a typo in
Stripe's metadata must not unlock everything). ``None`` as a limit means unlimited. Seats are not monthly: they
are the workspace's enabled users at any time. The LLM spend cap is in the LLM registry's cost unit (USD, what
``llm_models.input_cost_per_mtok`` and ``output_cost_per_mtok`` are priced in).

The free plan is sized so that a workspace can try every path for real (a 10,000-recipient campaign once, a team
of 25), not as a marketing figure; change the numbers here, nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

Metric = Literal["articles", "form_sends", "emails", "shortlink_clicks", "seats", "llm_spend_usd"]
METRICS: tuple[Metric, ...] = ("articles", "form_sends", "emails", "shortlink_clicks", "seats", "llm_spend_usd")
# Counters that start again every month; seats are counted live.
MONTHLY: frozenset[Metric] = frozenset(m for m in METRICS if m != "seats")
FALLBACK_PLAN = "free"

_CATALOGUE: dict[str, dict] = {
    "free": {"price_lookup_key": None,
             "limits": {"articles": 30, "form_sends": 500, "emails": 10_000, "shortlink_clicks": 10_000,
                        "seats": 25, "llm_spend_usd": "5.00"}},
    "starter": {"price_lookup_key": "funnel_starter_monthly",
                "limits": {"articles": 200, "form_sends": 5_000, "emails": 50_000, "shortlink_clicks": 100_000,
                           "seats": 50, "llm_spend_usd": "50.00"}},
    "pro": {"price_lookup_key": "funnel_pro_monthly",
            "limits": {"articles": 1_000, "form_sends": 50_000, "emails": 500_000, "shortlink_clicks": 1_000_000,
                       "seats": 250, "llm_spend_usd": "400.00"}},
    # Negotiated by contract and set by an operator (no Stripe price): no limit on anything.
    "enterprise": {"price_lookup_key": None,
                   "limits": {"articles": None, "form_sends": None, "emails": None, "shortlink_clicks": None,
                              "seats": None, "llm_spend_usd": None}},
}


@dataclass(frozen=True)
class Plan:
    name: str
    price_lookup_key: str | None
    limits: MappingProxyType  # Metric -> Decimal | None

    def limit(self, metric: Metric) -> Decimal | None:
        return self.limits[metric]


def _plan(name: str, entry: dict) -> Plan:
    raw = entry["limits"]
    missing = set(METRICS) - set(raw)
    if missing:
        raise ValueError(f"plan {name!r} has no limit for {sorted(missing)}")
    limits = {m: None if raw[m] is None else Decimal(str(raw[m])) for m in METRICS}
    return Plan(name, entry["price_lookup_key"], MappingProxyType(limits))


PLANS: MappingProxyType = MappingProxyType({name: _plan(name, entry) for name, entry in _CATALOGUE.items()})


def plan_named(name: str | None) -> Plan:
    """The plan ``tenants.plan`` names (a plan name or its price lookup key); the free plan for anything else."""
    if name in PLANS:
        return PLANS[name]
    for plan in PLANS.values():
        if plan.price_lookup_key is not None and plan.price_lookup_key == name:
            return plan
    return PLANS[FALLBACK_PLAN]


def plan_of_lookup_key(lookup_key: str) -> Plan | None:
    """The plan sold at this Stripe price lookup key (for Checkout), if any."""
    return next((p for p in PLANS.values() if p.price_lookup_key == lookup_key), None)
