"""Response models of one identity across the product: an organization's outreach companies and touches, the
channels (e-mail campaigns, outreach tasks) a DRM campaign is named by, and the first-touch funnel. The 360
profile (models_identity.DeveloperProfile) includes the first two."""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from funnel.api.contract import FreeJsonObject, Out

ChannelCategory = Literal["email_campaign", "outreach_task"]
FirstTouchSource = Literal["email", "outreach", "shortlink", "other"]


class OutreachCompany(Out):
    """An outreach contact (company) of the organization's domain, with where outreach stands with it."""

    contact_id: UUID
    company_name: str
    domain: str | None
    email: str | None
    default_url: str | None
    linked_by: Literal["domain", "email_domain"] = Field(
        description="the contact's website domain, or its e-mail address's domain, is the organization's")
    outreach_status: str = Field(description="its latest send-task target's status (pending, submitted, failed, "
                                             "skipped...), or `not_contacted`")
    task_id: UUID | None = Field(description="the send task of that target")
    target_updated_at: datetime | None
    last_sent_at: datetime | None = Field(description="the last form submitted to it")
    submissions: int


class TouchActivity(Out):
    """An activity another area's work caused (an e-mail click, a form submission)."""

    activity_id: UUID
    developer_id: UUID | None
    org_id: UUID | None = Field(description="set for an organization's activity (no developer)")
    account_id: UUID | None
    resource_id: UUID | None = Field(description="the e-mail campaign's or outreach task's resource")
    action: str
    occurred_at: datetime
    source: str
    source_ref: str | None
    category: str | None
    group_key: str | None
    metadata: FreeJsonObject | None
    confidence: float


class OrganizationOutreach(Out):
    org_id: UUID
    domain: str | None = Field(description="the organization's domain as companies are matched to it; null: none "
                                           "can be (no domain, or a free-mail one)")
    companies: list[OutreachCompany]
    touches: list[TouchActivity] = Field(description="the latest 20 activities of the organization, newest first")


class ChannelLink(Out):
    """An e-mail campaign or outreach task naming a DRM campaign: its resource, which activities point at."""

    resource_id: UUID
    category: ChannelCategory
    external_id: str = Field(description="the e-mail campaign's or the outreach task's id")
    title: str | None
    campaign_id: UUID | None
    created_at: datetime
    updated_at: datetime


class ChannelLinkList(Out):
    items: list[ChannelLink]


class FirstTouchCount(Out):
    source: FirstTouchSource
    touched: int = Field(description="developers whose first touch had this source")
    adopted: int = Field(description="of them, those with an adoption-stage activity")
    adoption_rate: float | None = Field(description="adopted / touched; null when none were touched")


class FirstTouchFunnel(Out):
    """Which work led to adoption: live developers by the source of their first touch (their own earliest
    activity or their organization's), and how many reached an adoption-stage action."""

    adoption_actions: list[str] = Field(description="the actions of the adoption stage (activity_funnel_map)")
    sources: list[FirstTouchCount]
    touched: int
    adopted: int
