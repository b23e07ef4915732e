"""Community API: campaigns, their budget entries, resources, attribution (settings, recomputation) and each
campaign's ROI (included by funnel.community.routes under /v1). Members read; members and above write. The rules
are in ``funnel.community.campaigns``."""
from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from funnel import db
from funnel.api.contract import Page, problems
from funnel.api.deps import CurrentPrincipal, Cursor, Limit, Writer, page_of
from funnel.community import campaigns
from funnel.community.models_campaigns import (
    AttributionSettings,
    AttributionSettingsBody,
    Budget,
    BudgetBody,
    BudgetCategory,
    BudgetChanges,
    Campaign,
    CampaignBody,
    CampaignChanges,
    CampaignRoi,
    RecomputeBody,
    RecomputeOutcome,
    Resource,
    ResourceBody,
    ResourceChanges,
)

router = APIRouter()
TAGS: list[str | Enum] = ["community"]
MONEY = ("amounts are exact decimals: send them as JSON strings (\"19.90\") or integers, never as JSON numbers "
         "with a fraction (422); they come back as strings")


# ---------------------------------------------------------------- attribution (before /campaigns/{campaign_id})

@router.get("/campaigns/attribution/settings", tags=TAGS)
def get_attribution_settings(principal: CurrentPrincipal) -> AttributionSettings:
    """How the workspace attributes conversions: the model, the time-decay half-life, the lookback window and the
    actions that are conversions (the defaults until they are saved: last_touch, 7 days, 30 days, signup)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return AttributionSettings.model_validate(campaigns.attribution_settings(conn))


@router.put("/campaigns/attribution/settings", tags=TAGS)
def put_attribution_settings(body: AttributionSettingsBody, principal: Writer) -> AttributionSettings:
    """Save the workspace's attribution settings. Rows already written keep their weights until their window is
    recomputed."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return AttributionSettings.model_validate(campaigns.save_attribution_settings(conn, principal,
                                                                                      body.model_dump()))


@router.post("/campaigns/attribution/recompute", tags=TAGS)
def recompute_attribution(body: RecomputeBody, principal: Writer) -> RecomputeOutcome:
    """Attribute the conversions of [`from`, `to`) to campaigns again (at most 366 days). A conversion's touches
    are its person's activities in the lookback window that name a campaign by their resource, their
    `metadata.utm_campaign` (the campaign's `attributes.utm_campaign`, or its name) or their
    `metadata.shortlink_id`; its weights (one row per campaign) sum to 1. The window's rows are replaced in one
    transaction: running it twice gives the same rows."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return RecomputeOutcome.model_validate(campaigns.recompute(conn, principal, body.model_dump()))


# ---------------------------------------------------------------- campaigns

@router.get("/campaigns", tags=TAGS)
def list_campaigns(principal: CurrentPrincipal, channel: Annotated[str | None, Query(max_length=100)] = None,
                   q: Annotated[str | None, Query(max_length=200)] = None, active_on: date | None = None,
                   limit: Limit = 50, cursor: Cursor = None) -> Page[Campaign]:
    """Newest first; `q` matches a part of the name; `active_on`: campaigns running that day (open dates count
    as running)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Campaign, campaigns.list_campaigns(conn, channel=channel, q=q, active_on=active_on,
                                                          cursor=cursor, limit=limit))


@router.post("/campaigns", status_code=201, tags=TAGS,
             responses=problems(409, conflict="a campaign of this name exists"), description=MONEY)
def create_campaign(body: CampaignBody, principal: Writer) -> Campaign:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Campaign.model_validate(campaigns.create_campaign(conn, principal, body.model_dump()))


@router.get("/campaigns/{campaign_id}", tags=TAGS, responses=problems(404))
def get_campaign(campaign_id: UUID, principal: CurrentPrincipal) -> Campaign:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Campaign.model_validate(campaigns.get_campaign(conn, campaign_id))


@router.patch("/campaigns/{campaign_id}", tags=TAGS,
              responses=problems(404, 409, conflict="a campaign of this name exists"))
def update_campaign(campaign_id: UUID, body: CampaignChanges, principal: Writer) -> Campaign:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Campaign.model_validate(campaigns.update_campaign(conn, principal, campaign_id,
                                                                 body.model_dump(exclude_unset=True)))


@router.delete("/campaigns/{campaign_id}", status_code=204, tags=TAGS, responses=problems(404))
def delete_campaign(campaign_id: UUID, principal: Writer) -> None:
    """The campaign with its budget entries and attribution rows; its resources and shortlinks stay, unlinked."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaigns.delete_campaign(conn, principal, campaign_id)


@router.get("/campaigns/{campaign_id}/roi", tags=TAGS, responses=problems(404))
def campaign_roi(campaign_id: UUID, principal: CurrentPrincipal, conversions_from: AwareDatetime | None = None,
                 conversions_to: AwareDatetime | None = None) -> CampaignRoi:
    """Conversions attributed to the campaign (the weighted sum of the last recomputations; optionally those of
    [`conversions_from`, `conversions_to`)), its cost in its own currency (budget entries in other currencies are
    listed apart, never converted), cost per conversion and conversions per unit of cost."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return CampaignRoi.model_validate(campaigns.roi(conn, campaign_id, start=conversions_from,
                                                        end=conversions_to))


# ---------------------------------------------------------------- budgets

@router.get("/campaigns/{campaign_id}/budgets", tags=TAGS, responses=problems(404))
def list_budgets(campaign_id: UUID, principal: CurrentPrincipal, category: BudgetCategory | None = None,
                 currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
                 spent_from: date | None = None, spent_to: date | None = None, limit: Limit = 50,
                 cursor: Cursor = None) -> Page[Budget]:
    """The campaign's budget entries, newest first; `spent_from` inclusive, `spent_to` exclusive."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Budget, campaigns.list_budgets(conn, campaign_id, category=category, currency_code=currency,
                                                      spent_from=spent_from, spent_to=spent_to, cursor=cursor,
                                                      limit=limit))


@router.post("/campaigns/{campaign_id}/budgets", status_code=201, tags=TAGS, responses=problems(404),
             description=MONEY)
def create_budget(campaign_id: UUID, body: BudgetBody, principal: Writer) -> Budget:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Budget.model_validate(campaigns.create_budget(conn, principal, campaign_id, body.model_dump()))


@router.get("/campaigns/{campaign_id}/budgets/{budget_id}", tags=TAGS, responses=problems(404))
def get_budget(campaign_id: UUID, budget_id: UUID, principal: CurrentPrincipal) -> Budget:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Budget.model_validate(campaigns.get_budget(conn, campaign_id, budget_id))


@router.patch("/campaigns/{campaign_id}/budgets/{budget_id}", tags=TAGS, responses=problems(404))
def update_budget(campaign_id: UUID, budget_id: UUID, body: BudgetChanges, principal: Writer) -> Budget:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Budget.model_validate(campaigns.update_budget(conn, principal, campaign_id, budget_id,
                                                             body.model_dump(exclude_unset=True)))


@router.delete("/campaigns/{campaign_id}/budgets/{budget_id}", status_code=204, tags=TAGS, responses=problems(404))
def delete_budget(campaign_id: UUID, budget_id: UUID, principal: Writer) -> None:
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaigns.delete_budget(conn, principal, campaign_id, budget_id)


# ---------------------------------------------------------------- resources

@router.get("/resources", tags=TAGS)
def list_resources(principal: CurrentPrincipal, category: Annotated[str | None, Query(max_length=100)] = None,
                   group_key: Annotated[str | None, Query(max_length=300)] = None, campaign_id: UUID | None = None,
                   limit: Limit = 50, cursor: Cursor = None) -> Page[Resource]:
    """Newest first, filtered by category, group key and campaign."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Resource, campaigns.list_resources(conn, category=category, group_key=group_key,
                                                          campaign_id=campaign_id, cursor=cursor, limit=limit))


@router.post("/resources", status_code=201, tags=TAGS,
             responses=problems(409, conflict="a resource of this category has this external_id"))
def create_resource(body: ResourceBody, principal: Writer) -> Resource:
    """A blog post, event, repository, video... that activities point at; `campaign_id` links its activities to a
    campaign (a touch, for attribution)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Resource.model_validate(campaigns.create_resource(conn, principal, body.model_dump()))


@router.get("/resources/{resource_id}", tags=TAGS, responses=problems(404))
def get_resource(resource_id: UUID, principal: CurrentPrincipal) -> Resource:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Resource.model_validate(campaigns.get_resource(conn, resource_id))


@router.patch("/resources/{resource_id}", tags=TAGS,
              responses=problems(404, 409, conflict="a resource of this category has this external_id"))
def update_resource(resource_id: UUID, body: ResourceChanges, principal: Writer) -> Resource:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Resource.model_validate(campaigns.update_resource(conn, principal, resource_id,
                                                                 body.model_dump(exclude_unset=True)))


@router.delete("/resources/{resource_id}", status_code=204, tags=TAGS, responses=problems(404))
def delete_resource(resource_id: UUID, principal: Writer) -> None:
    """The resource; its activities and shortlinks stay, without it."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        campaigns.delete_resource(conn, principal, resource_id)
