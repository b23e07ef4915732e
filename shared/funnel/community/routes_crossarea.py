"""Community API: one identity across the product (included by funnel.community.routes under /v1): an
organization's outreach companies and touches, the e-mail campaigns and outreach tasks a DRM campaign is named by,
and the first-touch funnel. Members read; members and above link. The rules are in
``funnel.community.crossarea`` (README-identity-across.md)."""
from __future__ import annotations

from enum import Enum
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import AwareDatetime

from funnel import db
from funnel.api.contract import problems
from funnel.api.deps import CurrentPrincipal, Writer
from funnel.community import crossarea, developers
from funnel.community.models_crossarea import ChannelLink, ChannelLinkList, FirstTouchFunnel, OrganizationOutreach

router = APIRouter()
TAGS: list[str | Enum] = ["community"]


@router.get("/organizations/{org_id}/outreach", tags=TAGS, responses=problems(404))
def get_organization_outreach(org_id: UUID, principal: CurrentPrincipal) -> OrganizationOutreach:
    """The outreach contacts (companies) of the organization's domain (their website's or their e-mail address's;
    never a free-mail domain) with their outreach status, and the organization's latest activities (form
    submissions, company-mailbox e-mail clicks)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        org = developers.get_organization(conn, org_id)
        return OrganizationOutreach.model_validate(crossarea.organization_outreach(conn, org))


@router.get("/campaigns/{campaign_id}/channels", tags=TAGS, responses=problems(404))
def list_channels(campaign_id: UUID, principal: CurrentPrincipal) -> ChannelLinkList:
    """The e-mail campaigns and outreach tasks that name this DRM campaign: their clicks and form submissions are
    its touches for attribution."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return ChannelLinkList(items=[ChannelLink.model_validate(r) for r in crossarea.channels(conn, campaign_id)])


def _link(principal: Writer, campaign_id: UUID, category: str, channel_id: UUID) -> ChannelLink:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return ChannelLink.model_validate(crossarea.link_channel(conn, principal, campaign_id, category, channel_id))


def _unlink(principal: Writer, campaign_id: UUID, category: str, channel_id: UUID) -> Response:
    with db.tenant_transaction(principal.tenant_id) as conn:
        crossarea.unlink_channel(conn, principal, campaign_id, category, channel_id)
    return Response(status_code=204)


@router.put("/campaigns/{campaign_id}/email-campaigns/{email_campaign_id}", tags=TAGS, responses=problems(404))
def link_email_campaign(campaign_id: UUID, email_campaign_id: UUID, principal: Writer) -> ChannelLink:
    """The e-mail campaign names this DRM campaign (instead of the one it named before): its recipients' clicks,
    earlier ones included, are attributed to it."""
    return _link(principal, campaign_id, crossarea.EMAIL_CAMPAIGN, email_campaign_id)


@router.delete("/campaigns/{campaign_id}/email-campaigns/{email_campaign_id}", tags=TAGS, status_code=204,
               response_class=Response, responses=problems(404))
def unlink_email_campaign(campaign_id: UUID, email_campaign_id: UUID, principal: Writer) -> Response:
    return _unlink(principal, campaign_id, crossarea.EMAIL_CAMPAIGN, email_campaign_id)


@router.put("/campaigns/{campaign_id}/outreach-tasks/{task_id}", tags=TAGS, responses=problems(404))
def link_outreach_task(campaign_id: UUID, task_id: UUID, principal: Writer) -> ChannelLink:
    """The outreach send task names this DRM campaign: its form submissions point at it."""
    return _link(principal, campaign_id, crossarea.OUTREACH_TASK, task_id)


@router.delete("/campaigns/{campaign_id}/outreach-tasks/{task_id}", tags=TAGS, status_code=204,
               response_class=Response, responses=problems(404))
def unlink_outreach_task(campaign_id: UUID, task_id: UUID, principal: Writer) -> Response:
    return _unlink(principal, campaign_id, crossarea.OUTREACH_TASK, task_id)


@router.get("/adoption/first-touch", tags=TAGS, responses=problems(422))
def first_touch_funnel(principal: CurrentPrincipal, touched_from: AwareDatetime | None = None,
                       touched_to: AwareDatetime | None = None) -> FirstTouchFunnel:
    """From first touch to adoption, per source: live developers whose first touch (their own earliest activity,
    or their organization's: an outreach form submission to its company) came from e-mail, outreach, a shortlink
    or anything else, optionally within [`touched_from`, `touched_to`), and how many of them reached an action of
    the adoption stage (the workspace's activity_funnel_map: signup, install, api_call...)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return FirstTouchFunnel.model_validate(crossarea.first_touch_funnel(conn, touched_from=touched_from,
                                                                            touched_to=touched_to))
