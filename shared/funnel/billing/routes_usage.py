"""Usage API: ``GET /v1/usage``, the counters of the tenant's plan for the frontend (any member reads it)."""
from __future__ import annotations

from fastapi import APIRouter

from funnel.api.contract import problems
from funnel.api.deps import CurrentPrincipal
from funnel.billing import usage
from funnel.billing.models_usage import UsageCounter, UsageOverview

router = APIRouter()  # composed into billing.routes.router, whose prefix is /v1


@router.get("/usage", tags=["billing"], responses=problems(404))
def get_usage(principal: CurrentPrincipal) -> UsageOverview:
    plan, period, counters = usage.counters(principal.tenant_id)
    return UsageOverview(plan=plan.name, period_start=period, counters=[UsageCounter(
        metric=c.metric, used=float(c.used), limit=None if c.limit is None else float(c.limit),
        percent=None if not c.limit else round(float(c.used * 100 / c.limit), 2), resets_at=c.resets_at)
        for c in counters])
