"""Response models of ``GET /v1/usage``: each counter of the tenant's plan, its limit and when it resets."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from funnel.api.contract import Out

MetricName = Literal["articles", "form_sends", "emails", "shortlink_clicks", "seats", "llm_spend_usd"]


class UsageCounter(Out):
    metric: MetricName = Field(description="what is counted; `llm_spend_usd` is the LLM calls' cost in USD")
    used: float = Field(description="this month's use (seats: the enabled users now)")
    limit: float | None = Field(description="the plan's limit; null: unlimited")
    percent: float | None = Field(description="`used` as a percentage of `limit` (null without a limit)")
    resets_at: datetime | None = Field(description="when the counter starts again at zero (the first moment of "
                                                   "next month, UTC); null for seats, which do not reset")


class UsageOverview(Out):
    """The tenant's plan and its counters: owners are notified at 80 % and 100 % of a limit, once a month."""

    plan: str = Field(description="the plan whose limits apply (`free` for a name the catalogue does not know)")
    period_start: date = Field(description="the first day of the month counted (UTC)")
    counters: list[UsageCounter]
