"""Community API models: campaigns, their budget entries, resources, attribution settings and recomputation, ROI.

Money is exact. An amount comes in as a JSON string (``"12500"``, ``"19.90"``) or a JSON integer, never as a JSON
number with a fraction (a binary float cannot hold 19.90: that is a 422), goes to PostgreSQL as ``numeric`` and
comes back as a JSON string holding the stored digits. Ratios (cost per conversion...) are strings too.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from funnel.api.contract import FreeJsonObject, Out
from funnel.api.deps import StrictModel

BudgetCategory = Literal["labor", "ad", "production", "venue", "tool", "other"]
BudgetSource = Literal["form", "api", "csv", "plugin"]
AttributionModel = Literal["first_touch", "last_touch", "linear", "time_decay"]
MAX_AMOUNT_DIGITS = 15  # digits before the point: a trillion yen and more, far from numeric's limits


def _no_float(value: Any) -> Any:
    """A JSON number with a fraction reached Python as a float, already rounded in binary: refuse it."""
    if isinstance(value, float):
        raise ValueError("give an amount with a fraction as a JSON string (\"19.90\"): a JSON number with a "
                         "fraction is a binary float and not exact")
    if isinstance(value, bool):
        raise ValueError("an amount is a decimal string or an integer")
    return value


AMOUNT_PATTERN = r"^[+-]?\d{1,15}(\.\d{1,4})?$"
Amount = Annotated[
    Decimal, BeforeValidator(_no_float),
    Field(max_digits=MAX_AMOUNT_DIGITS + 4, decimal_places=4, allow_inf_nan=False),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": AMOUNT_PATTERN}, {"type": "integer"}],
                    "description": "an exact decimal amount: a string (\"19.90\") or an integer; at most as many "
                                   "decimals as the currency has (JPY none, USD 2, KWD 3)",
                    "examples": ["12500", "19.90"]}, mode="validation"),
    WithJsonSchema({"type": "string", "description": "an exact decimal amount (the stored digits)",
                    "examples": ["12500", "19.90"]}, mode="serialization"),
]
# Out as the plain digits ("0.0000003", never "3E-7", which str(Decimal) gives for small values).
Money = Annotated[Decimal, PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
                  WithJsonSchema({"type": "string", "description": "an exact decimal (a string)",
                                  "examples": ["12500"]})]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern="^[A-Za-z]{3}$", examples=["JPY"],
                                description="ISO 4217 code (upper case)")]


class CampaignAttributes(StrictModel):
    """UTM parameters and free fields. ``utm_campaign`` is what activities' ``metadata.utm_campaign`` is matched
    against (the campaign's name when it has none)."""
    model_config = {"extra": "allow", "str_strip_whitespace": True}
    utm_source: str | None = Field(default=None, max_length=200)
    utm_medium: str | None = Field(default=None, max_length=200)
    utm_campaign: str | None = Field(default=None, max_length=200)
    utm_term: str | None = Field(default=None, max_length=200)
    utm_content: str | None = Field(default=None, max_length=200)


class CampaignBody(StrictModel):
    name: str = Field(min_length=1, max_length=200, description="unique in the workspace")
    channel: str | None = Field(default=None, min_length=1, max_length=100, examples=["event", "ad", "blog"])
    start_date: date | None = None
    end_date: date | None = Field(default=None, description="on or after start_date")
    budget_total: Amount | None = Field(default=None, description="the planned budget in `currency` (>= 0)")
    currency: Currency = "JPY"
    attributes: CampaignAttributes = Field(default_factory=CampaignAttributes)


class CampaignChanges(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    channel: str | None = Field(default=None, min_length=1, max_length=100)
    start_date: date | None = None
    end_date: date | None = None
    budget_total: Amount | None = None
    currency: Currency | None = None
    attributes: CampaignAttributes | None = None


class MoneyTotal(Out):
    currency: str
    amount: Money


class Campaign(Out):
    campaign_id: UUID
    name: str
    channel: str | None
    start_date: date | None
    end_date: date | None
    budget_total: Money | None
    currency: str
    attributes: FreeJsonObject
    spent: list[MoneyTotal] = Field(description="the budget entries' sums, one per currency (never added across "
                                                "currencies)")
    created_at: datetime
    updated_at: datetime


class BudgetBody(StrictModel):
    category: BudgetCategory
    amount: Amount = Field(description="negative for a refund or a correction")
    currency: Currency = "JPY"
    spent_at: date
    source: BudgetSource = "api"
    memo: str | None = Field(default=None, max_length=2000)
    meta: dict[str, Any] = Field(default_factory=dict)


class BudgetChanges(StrictModel):
    category: BudgetCategory | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    spent_at: date | None = None
    source: BudgetSource | None = None
    memo: str | None = Field(default=None, max_length=2000)
    meta: dict[str, Any] | None = None


class Budget(Out):
    budget_id: UUID
    campaign_id: UUID
    category: BudgetCategory
    amount: Money
    currency: str
    spent_at: date
    source: str | None
    memo: str | None
    meta: FreeJsonObject
    created_at: datetime


class ResourceBody(StrictModel):
    category: str = Field(min_length=1, max_length=100, examples=["blog", "event", "repo", "video"])
    group_key: str | None = Field(default=None, min_length=1, max_length=300)
    title: str | None = Field(default=None, max_length=1000)
    url: str | None = Field(default=None, max_length=2000, description="http or https; stored normalised")
    external_id: str | None = Field(default=None, min_length=1, max_length=500,
                                    description="unique per category in the workspace")
    campaign_id: UUID | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class ResourceChanges(StrictModel):
    category: str | None = Field(default=None, min_length=1, max_length=100)
    group_key: str | None = Field(default=None, min_length=1, max_length=300)
    title: str | None = Field(default=None, max_length=1000)
    url: str | None = Field(default=None, max_length=2000)
    external_id: str | None = Field(default=None, min_length=1, max_length=500)
    campaign_id: UUID | None = None
    attributes: dict[str, Any] | None = None


class Resource(Out):
    resource_id: UUID
    category: str
    group_key: str | None
    title: str | None
    url: str | None
    external_id: str | None
    campaign_id: UUID | None
    attributes: FreeJsonObject
    created_at: datetime
    updated_at: datetime


Action = Annotated[str, Field(min_length=1, max_length=100)]


class AttributionSettingsBody(StrictModel):
    model: AttributionModel = "last_touch"
    half_life_days: float = Field(default=7.0, gt=0, le=3650, description="time_decay: a touch this many days "
                                                                           "before the conversion counts half")
    lookback_days: int = Field(default=30, ge=1, le=3650, description="touches at most this many days before the "
                                                                      "conversion count")
    conversion_actions: list[Action] = Field(default=["signup"], min_length=1, max_length=50,
                                             description="the activity actions that are conversions")


class AttributionSettings(Out):
    model: AttributionModel
    half_life_days: float
    lookback_days: int
    conversion_actions: list[str]
    updated_at: datetime | None = Field(description="null while the workspace has the defaults")


class RecomputeBody(StrictModel):
    """A window of conversions (``from`` inclusive, ``to`` exclusive) to attribute again. Omitted settings are the
    workspace's (GET /v1/campaigns/attribution/settings)."""
    model_config = {"extra": "forbid", "populate_by_name": True}
    model: AttributionModel | None = None
    half_life_days: float | None = Field(default=None, gt=0, le=3650)
    lookback_days: int | None = Field(default=None, ge=1, le=3650)
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime
    conversion_actions: list[Action] | None = Field(default=None, min_length=1, max_length=50)


class RecomputeOutcome(Out):
    model: AttributionModel
    half_life_days: float
    lookback_days: int
    conversion_actions: list[str]
    conversions: int = Field(description="conversion activities in the window")
    attributed: int = Field(description="conversions with at least one touch (they get rows)")
    deleted: int = Field(description="rows of the window's activities removed")
    written: int = Field(description="activity_campaigns rows written (one per conversion and campaign)")


class CampaignRoi(Out):
    campaign_id: UUID
    currency: str = Field(description="the campaign's currency: cost and ratios are in it")
    conversions: Money = Field(description="the weighted sum of the conversions attributed to the campaign")
    cost: Money = Field(description="the budget entries in the campaign's currency")
    other_currencies: list[MoneyTotal] = Field(description="budget entries in other currencies, not converted and "
                                                           "not in `cost`")
    cost_per_conversion: Money | None = Field(description="cost / conversions (4 decimals); null without "
                                                          "conversions")
    conversions_per_cost: Money | None = Field(description="conversions per one unit of the currency (12 "
                                                           "decimals); null without cost")
