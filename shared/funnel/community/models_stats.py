"""Community API models: rolled-up stats of developers and campaigns, the rollup's state, the funnel map, funnel
counts and conversion, activity time series, and saved segments with their members."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, PlainSerializer, WithJsonSchema

from funnel.api.contract import Out
from funnel.api.deps import StrictModel

SeriesInterval = Literal["day", "week", "month"]
SeriesBy = Literal["total", "action", "stage"]
EngagedPeriod = Literal["quarter", "month", "last_days"]
# Exact decimals out as strings (ratios, weights, money)
Exact = Annotated[Decimal, PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
                  WithJsonSchema({"type": "string", "description": "an exact decimal (a string)",
                                  "examples": ["0.5000"]})]


# ---------------------------------------------------------------- rollup

class DeveloperStats(Out):
    developer_id: UUID
    last_action_at: datetime | None
    total_actions: int
    clicks: int
    attends: int
    posts: int
    stars: int
    updated_at: datetime | None = Field(description="when the rollup last changed these figures; null before it "
                                                    "counted the developer")


class CampaignStats(Out):
    campaign_id: UUID
    currency: str = Field(description="the campaign's currency: cost_total is in it")
    actions_total: int = Field(description="activities that touch the campaign (its resources, its utm_campaign "
                                           "or name, its shortlinks), all time")
    conversions: int = Field(description="conversions credited to the campaign (attribution rows)")
    conversions_weighted: Exact = Field(description="the sum of the attribution weights")
    cost_total: Exact = Field(description="budget entries in the campaign's currency")
    roi_per_cost: Exact | None = Field(description="conversions_weighted per unit of cost (12 decimals); null "
                                                   "without cost")
    updated_at: datetime


class RollupState(Out):
    rolled_up_at: datetime
    full_at: datetime | None = Field(description="the last full recount")
    high_water_change_id: int | None = Field(description="the highest change the last rollups consumed")
    changes: int = Field(description="changes the last rollup consumed")
    developers_written: int
    campaigns_written: int
    was_full: bool
    duration_ms: int


class RollupStatus(Out):
    last: RollupState | None = Field(description="null before the first rollup")
    pending_changes: int = Field(description="changes waiting for the next rollup")


class RollupOutcome(RollupStatus):
    ran: bool = Field(description="false when a scheduled rollup of the workspace was still running after 20 s "
                                  "(the next one counts what it did not)")


class RollupBody(StrictModel):
    full: bool = Field(default=False, description="recount everything instead of what changed")


# ---------------------------------------------------------------- funnel

class FunnelStage(Out):
    stage_key: str
    order_no: int
    title: str


class FunnelMapping(StrictModel):
    action: str = Field(min_length=1, max_length=100)
    stage_key: str = Field(min_length=1, max_length=100)


class FunnelMappingOut(Out):
    action: str
    stage_key: str


class FunnelMap(Out):
    stages: list[FunnelStage]
    mappings: list[FunnelMappingOut]
    is_default: bool = Field(description="true while the workspace uses the product's default map")


class FunnelMapBody(StrictModel):
    mappings: list[FunnelMapping] = Field(max_length=1000, description="the whole map; an empty list goes back "
                                                                       "to the product's defaults")


class FunnelStageCounts(Out):
    stage_key: str
    order_no: int
    title: str
    activities: int = Field(description="activities in the range whose action maps to this stage")
    developers: int = Field(description="distinct developers of those activities")
    reached: int = Field(description="developers whose furthest stage in the range is this one or a later one")
    conversion_from_previous: Exact | None = Field(description="reached / the previous stage's reached (4 "
                                                               "decimals); null for the first stage or without "
                                                               "developers before")


class Funnel(Out):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    campaign_id: UUID | None = Field(description="set: only the developers the campaign touched in the range")
    stages: list[FunnelStageCounts]


# ---------------------------------------------------------------- time series

class SeriesPoint(Out):
    start: date = Field(description="the local date (in `tz`) the bucket starts on")
    activities: int
    developers: int = Field(description="distinct developers in the bucket")


class Series(Out):
    key: str | None = Field(description="the action or stage; null for by=total")
    points: list[SeriesPoint]


class ActivitySeries(Out):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    interval: SeriesInterval
    tz: str
    by: SeriesBy
    action: str | None
    stage: str | None
    buckets: list[date]
    series: list[Series]


# ---------------------------------------------------------------- segments

class ActiveThenSilent(StrictModel):
    """Active in the `active_days` before the last `silent_days`, nothing since."""
    kind: Literal["active_then_silent"]
    active_days: int = Field(default=90, ge=1, le=3650)
    silent_days: int = Field(default=30, ge=1, le=3650)


class MostEngaged(StrictModel):
    """The `top` developers by activities in the period."""
    kind: Literal["most_engaged"]
    top: int = Field(default=100, ge=1, le=10000)
    period: EngagedPeriod = "quarter"
    days: int | None = Field(default=None, ge=1, le=3650, description="the period last_days: how many")
    tz: str = Field(default="UTC", min_length=1, max_length=64, description="IANA zone of the calendar periods")


Definition = Annotated[ActiveThenSilent | MostEngaged, Field(discriminator="kind")]


class SegmentBody(StrictModel):
    name: str = Field(min_length=1, max_length=200, description="unique in the workspace")
    description: str | None = Field(default=None, max_length=2000)
    definition: Definition


class SegmentChanges(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    definition: Definition | None = None


class ActiveThenSilentOut(Out):
    kind: Literal["active_then_silent"]
    active_days: int
    silent_days: int


class MostEngagedOut(Out):
    kind: Literal["most_engaged"]
    top: int
    period: EngagedPeriod
    days: int | None = None
    tz: str


class Segment(Out):
    segment_id: UUID
    name: str
    description: str | None
    definition: Annotated[ActiveThenSilentOut | MostEngagedOut, Field(discriminator="kind")]
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class SegmentMember(Out):
    developer_id: UUID
    display_name: str | None
    primary_email: str | None
    org_id: UUID | None
    last_action_at: datetime | None = Field(description="from the last rollup")
    total_actions: int = Field(description="from the last rollup")
    activities_in_period: int | None = Field(description="most_engaged: the activities the ranking counted")
