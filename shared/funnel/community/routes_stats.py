"""Community API: rolled-up stats (developers, campaigns, the rollup itself), the funnel and its map, activity
time series and saved segments (included by funnel.community.routes under /v1). Every role reads; members and
above write segments; admins change the funnel map and run a rollup by hand. The rules are in
``funnel.community.stats`` and ``funnel.community.segments``."""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from funnel import db
from funnel.api.contract import Page, problems
from funnel.api.deps import Admin, CurrentPrincipal, Cursor, Limit, Writer, page_of
from funnel.community import segments, stats
from funnel.community.models_stats import (
    ActivitySeries,
    CampaignStats,
    DeveloperStats,
    Funnel,
    FunnelMap,
    FunnelMapBody,
    RollupBody,
    RollupOutcome,
    RollupStatus,
    Segment,
    SegmentBody,
    SegmentChanges,
    SegmentMember,
    SeriesBy,
    SeriesInterval,
)

router = APIRouter()
TAGS: list[str | Enum] = ["community"]
From = Annotated[AwareDatetime | None, Query(alias="from", description="start of the range (included); default "
                                                                      "30 days before `to`")]
To = Annotated[AwareDatetime | None, Query(description="end of the range (excluded); default now")]
RANGE = "The range is [`from`, `to`) by the activities' `occurred_at`; `to` must be after `from` (422 naming `to`)."


def _segment(row: dict) -> Segment:
    return Segment.model_validate(segments.shown(row))


# ---------------------------------------------------------------- rollup

@router.get("/stats/rollup", tags=TAGS)
def get_rollup_status(principal: CurrentPrincipal) -> RollupStatus:
    """The last rollup of developer and campaign stats (every 5 minutes) and the changes waiting for the next."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return RollupStatus.model_validate(stats.rollup_status(conn))


@router.post("/stats/rollup", tags=TAGS)
def run_rollup(body: RollupBody, principal: Admin) -> RollupOutcome:
    """Roll the stats up now (what the schedule does), or recount everything with `full`."""
    return RollupOutcome.model_validate(stats.rollup_now(principal, full=body.full))


@router.get("/stats/developers/{developer_id}", tags=TAGS, responses=problems(404))
def get_developer_stats(developer_id: UUID, principal: CurrentPrincipal) -> DeveloperStats:
    """The developer's figures as of the last rollup (zeros before it counted them)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return DeveloperStats.model_validate(stats.developer_stats(conn, developer_id))


@router.get("/stats/campaigns/{campaign_id}", tags=TAGS, responses=problems(404))
def get_campaign_stats(campaign_id: UUID, principal: CurrentPrincipal) -> CampaignStats:
    """The campaign's figures as of the last rollup: touches, credited conversions (count and weights), cost in
    its currency and conversions per unit of cost."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return CampaignStats.model_validate(stats.campaign_stats(conn, campaign_id))


# ---------------------------------------------------------------- funnel

FUNNEL = ("Per stage (awareness, engagement, adoption, advocacy): the activities mapped to it, their developers, "
          "and the developers who reached it (their furthest stage in the range is it or a later one); the "
          "conversion from the previous stage is reached / the previous reached. With `campaign_id`: only the "
          "developers the campaign touched in the range (an unknown campaign is a 422 naming it). " + RANGE)
SERIES = ("Activities and distinct developers per day, ISO week (from Monday) or month in `tz` (buckets are local "
          "dates, every bucket present, zeros included; at most 1000), in one series (`by=total`) or one per action "
          "or stage; `action` / `stage` filter. A zone that is not IANA, an unknown stage or an unknown interval is "
          "a 422 naming it. " + RANGE)


@router.get("/funnel", tags=TAGS, description=FUNNEL)
def get_funnel(principal: CurrentPrincipal, from_: From = None, to: To = None,
               campaign_id: UUID | None = None) -> Funnel:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Funnel.model_validate(stats.funnel(conn, start=from_, end=to, campaign_id=campaign_id))


@router.get("/funnel/map", tags=TAGS)
def get_funnel_map(principal: CurrentPrincipal) -> FunnelMap:
    """The stages and which action is in which (the product's defaults until the workspace saves its own)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return FunnelMap.model_validate(stats.funnel_map(conn))


@router.put("/funnel/map", tags=TAGS)
def put_funnel_map(body: FunnelMapBody, principal: Admin) -> FunnelMap:
    """Replace the workspace's map (an unknown stage or an action given twice is a 422 naming it; an empty list
    goes back to the defaults). Funnels and series read it at once; stored stats do not depend on it."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return FunnelMap.model_validate(stats.save_funnel_map(conn, principal, [(m.action, m.stage_key)
                                                                                  for m in body.mappings]))


# ---------------------------------------------------------------- time series

@router.get("/stats/activities", tags=TAGS, description=SERIES)
def activity_series(principal: CurrentPrincipal, from_: From = None, to: To = None,
                    interval: SeriesInterval = "day",
                    tz: Annotated[str, Query(min_length=1, max_length=64,
                                             description="IANA time zone of the buckets")] = "UTC",
                    by: SeriesBy = "total",
                    action: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
                    stage: Annotated[str | None, Query(min_length=1, max_length=100)] = None) -> ActivitySeries:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return ActivitySeries.model_validate(stats.series(conn, start=from_, end=to, interval=interval, tz=tz, by=by,
                                                          action=action, stage=stage))


# ---------------------------------------------------------------- segments

@router.get("/segments", tags=TAGS)
def list_segments(principal: CurrentPrincipal,
                  kind: Literal["active_then_silent", "most_engaged"] | None = None,
                  limit: Limit = 50, cursor: Cursor = None) -> Page[Segment]:
    """Saved segments, newest first."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        page = segments.list_segments(conn, kind=kind, cursor=cursor, limit=limit)
        return Page[Segment](items=[_segment(r) for r in page.items], next_cursor=page.next_cursor)


@router.post("/segments", status_code=201, tags=TAGS,
             responses=problems(409, conflict="a segment of this name exists"))
def create_segment(body: SegmentBody, principal: Writer) -> Segment:
    """`active_then_silent`: active in the `active_days` before the last `silent_days` and silent since;
    `most_engaged`: the `top` developers by activities this `quarter` or `month` (in `tz`) or in the `last_days`."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return _segment(segments.create_segment(conn, principal, body.model_dump()))


@router.get("/segments/{segment_id}", tags=TAGS, responses=problems(404))
def get_segment(segment_id: UUID, principal: CurrentPrincipal) -> Segment:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return _segment(segments.get_segment(conn, segment_id))


@router.patch("/segments/{segment_id}", tags=TAGS,
              responses=problems(404, 409, conflict="a segment of this name exists"))
def update_segment(segment_id: UUID, body: SegmentChanges, principal: Writer) -> Segment:
    with db.tenant_transaction(principal.tenant_id) as conn:
        changes = body.model_dump(exclude_unset=True)
        if body.definition is not None:  # a new definition is whole: its defaults apply (exclude_unset drops them)
            changes["definition"] = body.definition.model_dump()
        return _segment(segments.update_segment(conn, principal, segment_id, changes))


@router.delete("/segments/{segment_id}", status_code=204, tags=TAGS, responses=problems(404))
def delete_segment(segment_id: UUID, principal: Writer) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        segments.delete_segment(conn, principal, segment_id)


@router.get("/segments/{segment_id}/members", tags=TAGS, responses=problems(404))
def segment_members(segment_id: UUID, principal: CurrentPrincipal, limit: Limit = 50,
                    cursor: Cursor = None) -> Page[SegmentMember]:
    """The segment's developers now (active_then_silent: latest last action first, from the last rollup;
    most_engaged: most activities first). Merged and erased developers are never members."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(SegmentMember, segments.members(conn, segment_id, cursor=cursor, limit=limit))
