"""Response models of the community identity API: developers and their 360 profile, organizations, accounts,
identifiers, merge suggestions and merge history.

Field types follow the columns (migrations/tenant/versions/community_0001_tables.py): a nullable column is a
required, nullable field.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from funnel.api.contract import FreeJsonObject, Out
from funnel.community.models_crossarea import OutreachCompany, TouchActivity

IdentifierKind = Literal["email", "domain", "phone", "click_id", "mlid", "key_fp"]
SuggestionStatus = Literal["open", "accepted", "rejected"]


class Organization(Out):
    org_id: UUID
    name: str
    domain_primary: str | None = Field(description="the organization's main domain, lower case")
    attributes: FreeJsonObject
    developer_count: int = Field(description="live developers (neither merged nor erased) of the organization")
    created_at: datetime
    updated_at: datetime


class Developer(Out):
    developer_id: UUID
    display_name: str | None
    primary_email: str | None
    org_id: UUID | None
    consent_analytics: bool = Field(description="false: no tracking-derived activities are recorded for them")
    tags: list[str]
    merged_into: UUID | None = Field(description="set when this developer was merged into another: its accounts, "
                                                 "identifiers and activities are there now")
    erased_at: datetime | None = Field(description="when the developer's personal data was erased")
    created_at: datetime
    updated_at: datetime


class DeveloperSummary(Out):
    """A developer as lists and suggestions show one."""

    developer_id: UUID
    display_name: str | None
    primary_email: str | None
    org_id: UUID | None
    org_name: str | None
    tags: list[str]
    consent_analytics: bool
    merged_into: UUID | None
    erased_at: datetime | None
    account_count: int
    providers: list[str] = Field(description="the providers of the developer's accounts (github, x, ...)")
    created_at: datetime


class Account(Out):
    account_id: UUID
    developer_id: UUID | None
    provider: str
    external_user_id: str = Field(description="the provider's id of the user; `erased:...` once erased")
    handle: str | None
    email: str | None
    display_name: str | None
    profile_url: str | None
    avatar_url: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    verified_at: datetime | None
    is_primary: bool
    confidence: float
    attributes: FreeJsonObject
    created_at: datetime
    updated_at: datetime


class Identifier(Out):
    identifier_id: UUID
    developer_id: UUID
    account_id: UUID | None = Field(description="the account it was seen on")
    kind: IdentifierKind
    value_normalized: str = Field(description="as identity compares it (NFKC, case, Gmail dots and +tags...)")
    confidence: float
    attributes: FreeJsonObject
    first_seen: datetime | None
    last_seen: datetime | None


class IdentifierList(Out):
    items: list[Identifier]


class Evidence(Out):
    kind: str = Field(description="what was found (same_name, same_handle, shared_identifier, manual, ...)")
    detail: str
    weight: float


class MergeSuggestion(Out):
    """Two developers that may be one person, with the evidence and how confident it is."""

    suggestion_id: UUID
    confidence: float = Field(gt=0, lt=1)
    evidence: list[Evidence]
    status: SuggestionStatus
    developer: DeveloperSummary
    other_developer: DeveloperSummary
    decided_by: UUID | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MovedRows(Out):
    """What a merge moved from the merged developer (an unmerge moves exactly these back)."""

    accounts: list[UUID]
    identifiers: list[UUID]
    activity_count: int


class MergeLog(Out):
    merge_id: UUID
    action: Literal["merge", "unmerge"]
    into_developer_id: UUID
    from_developer_id: UUID
    reason: str | None
    evidence: list[Evidence]
    moved: MovedRows
    undoes_merge_id: UUID | None = Field(description="an unmerge: the merge it undid")
    undone_at: datetime | None = Field(description="a merge: when it was undone")
    merged_at: datetime
    merged_by: UUID | None = Field(description="the user; null when the system merged on certain evidence")


class DeveloperActivity(Out):
    activity_id: UUID
    account_id: UUID | None
    resource_id: UUID | None
    action: str
    occurred_at: datetime
    source: str
    source_ref: str | None
    category: str | None
    group_key: str | None
    metadata: FreeJsonObject | None
    confidence: float


class ActionCount(Out):
    action: str
    count: int
    last_at: datetime


class ActivityStats(Out):
    total: int
    last_activity_at: datetime | None
    by_action: list[ActionCount] = Field(description="most frequent first")


class DeveloperProfile(Out):
    """The 360 view. A merged developer's id still answers: `developer.merged_into` and `current_developer_id`
    name where its rows are now (its own lists are then empty)."""

    developer: Developer
    current_developer_id: UUID = Field(description="the live developer holding this one's rows: itself, or the "
                                                   "end of its merged_into chain")
    organization: Organization | None
    accounts: list[Account]
    identifiers: list[Identifier]
    recent_activities: list[DeveloperActivity] = Field(description="the latest 20, newest first")
    stats: ActivityStats
    open_suggestions: list[MergeSuggestion]
    merge_history: list[MergeLog] = Field(description="the latest 20 merges and unmerges involving it")
    email_clicks: list[TouchActivity] = Field(description="the latest 20 clicks on links of e-mail campaigns "
                                                          "(source `email`), newest first")
    organization_touches: list[TouchActivity] = Field(
        description="the latest 20 activities of its organization (outreach form submissions to its companies, "
                    "clicks from company mailboxes), newest first")
    organization_companies: list[OutreachCompany] = Field(
        description="the outreach contacts of its organization's domain, with their outreach status")


class Erasure(Out):
    """What an erasure removed; activity rows stay (action, time, resource, source), counted in the stats."""

    developer: Developer
    developers_erased: int = Field(description="the developer and those merged into it earlier")
    accounts_erased: int
    identifiers_deleted: int
    activities_stripped: int = Field(description="activities whose metadata lost personal fields")
