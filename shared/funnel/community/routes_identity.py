"""Community API: developers (search, the 360 profile, manual creation, changes, erasure), organizations,
accounts, identifiers, merge suggestions, merges and unmerges (included by funnel.community.routes under /v1).

Members read; members and above create, change, merge, unmerge, accept and reject; admins erase. The rules and
their decisions are in ``funnel.community.developers``."""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field, StringConstraints

from funnel import db
from funnel.api.contract import Page, problems
from funnel.api.deps import Admin, CurrentPrincipal, Cursor, Email, Limit, StrictModel, Writer, page_of
from funnel.community import developers
from funnel.community.identity import AccountIn
from funnel.community.models_identity import (
    Account,
    Developer,
    DeveloperProfile,
    DeveloperSummary,
    Erasure,
    IdentifierList,
    MergeLog,
    MergeSuggestion,
    Organization,
)
from funnel.platform.errors import ValidationFailed

router = APIRouter()
TAGS: list[str | Enum] = ["community"]

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
SearchText = Annotated[str | None, Query(max_length=200)]


class AccountBody(StrictModel):
    """An account as its source knows it; it is resolved like every ingested account."""

    provider: str = Field(min_length=1, max_length=50, description="github, x, discord, connpass, ...")
    external_user_id: str = Field(min_length=1, max_length=300, description="the provider's id of the user")
    handle: str | None = Field(default=None, max_length=300)
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=300)
    org: str | None = Field(default=None, max_length=300)
    profile_url: str | None = Field(default=None, max_length=2000)
    avatar_url: str | None = Field(default=None, max_length=2000)
    attributes: dict[str, Any] = Field(default_factory=dict)

    def account_in(self) -> AccountIn:
        return AccountIn(**self.model_dump())


class DeveloperBody(StrictModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=300)
    primary_email: Email | None = None
    org_id: UUID | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    consent_analytics: bool = True
    accounts: list[AccountBody] = Field(default_factory=list, max_length=100,
                                        description="resolved through identity resolution: accounts that certain "
                                                    "evidence links to an existing developer are a 409")


class DeveloperChanges(StrictModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=300)
    primary_email: Email | None = None
    org_id: UUID | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    consent_analytics: bool | None = None


class OrganizationBody(StrictModel):
    name: str = Field(min_length=1, max_length=300)
    domain_primary: str | None = Field(default=None, max_length=253)
    attributes: dict[str, Any] = Field(default_factory=dict)


class OrganizationChanges(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=300)
    domain_primary: str | None = Field(default=None, max_length=253)
    attributes: dict[str, Any] | None = None


class MergeBody(StrictModel):
    into_developer_id: UUID = Field(description="the developer that stays")
    from_developer_id: UUID = Field(description="the developer merged into it (kept, with `merged_into`)")
    reason: str | None = Field(default=None, max_length=1000)


# ---------------------------------------------------------------- developers

@router.get("/developers", tags=TAGS)
def search_developers(principal: CurrentPrincipal, q: SearchText = None,
                      tag: Annotated[str | None, Query(max_length=64)] = None, org_id: UUID | None = None,
                      include_erased: bool = False, limit: Limit = 50,
                      cursor: Cursor = None) -> Page[DeveloperSummary]:
    """Live developers (not merged into another), newest first. Each word of `q` must start a word of the
    developer's or its accounts' names, an e-mail address or a handle (`tana` finds Keiko Tanaka, `ktanaka` the
    handle ktanaka87); a name in another script matches its reading (山田 finds Yamada and the reverse); a whole
    e-mail address matches as identity normalises it (Gmail dots and +tags); `q` also matches a part of the
    organization's name. Erased developers only with `include_erased`."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(DeveloperSummary, developers.search(conn, q=q, tag=tag, org_id=org_id,
                                                           include_erased=include_erased, cursor=cursor,
                                                           limit=limit))


@router.post("/developers", status_code=201, tags=TAGS,
             responses=problems(409, conflict="the accounts belong to an existing developer, or another developer "
                                              "has the primary e-mail"))
def create_developer(body: DeveloperBody, principal: Writer) -> Developer:
    """Create a developer by hand. With `accounts`, they are resolved as every ingested account is and the
    developer they make is given the body's fields."""
    if body.display_name is None and body.primary_email is None and not body.accounts:
        raise ValidationFailed.at(["body", "display_name"], "give a display name, a primary e-mail or accounts")
    fields = body.model_dump(exclude={"accounts"}, exclude_unset=bool(body.accounts))
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Developer.model_validate(developers.create_developer(
            conn, principal, fields, [account.account_in() for account in body.accounts]))


@router.get("/developers/{developer_id}", tags=TAGS, responses=problems(404))
def get_developer(developer_id: UUID, principal: CurrentPrincipal) -> DeveloperProfile:
    """The 360 profile. A merged developer's id answers too (200): `developer.merged_into` and
    `current_developer_id` name the developer its rows are with now."""
    with db.tenant_transaction(principal.tenant_id, snapshot=True) as conn:  # its parts agree with each other
        return DeveloperProfile.model_validate(developers.profile(conn, developer_id))


@router.patch("/developers/{developer_id}", tags=TAGS,
              responses=problems(404, 409, conflict="the developer was merged or erased, or another developer has "
                                                    "the primary e-mail"))
def update_developer(developer_id: UUID, body: DeveloperChanges, principal: Writer) -> Developer:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Developer.model_validate(developers.update_developer(conn, principal, developer_id,
                                                                    body.model_dump(exclude_unset=True)))


@router.post("/developers/{developer_id}/erase", tags=TAGS,
             responses=problems(404, 409, conflict="already erased, or merged into another (erase that one)"))
def erase_developer(developer_id: UUID, principal: Admin) -> Erasure:
    """Erase the developer's personal data (and that of the developers merged into it): names, e-mails,
    handles, profiles, identifiers, the accounts' provider ids, personal fields of activity metadata. Activity
    rows stay (action, time, resource, source), so counts and stats keep them. Audited. An erased developer
    cannot be merged or changed; a later event from one of its former accounts starts a new developer."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Erasure.model_validate(developers.erase(conn, principal, developer_id))


@router.get("/developers/{developer_id}/identifiers", tags=TAGS, responses=problems(404))
def developer_identifiers(developer_id: UUID, principal: CurrentPrincipal) -> IdentifierList:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return IdentifierList.model_validate({"items": developers.identifiers(conn, developer_id)})


# ---------------------------------------------------------------- organizations

@router.get("/organizations", tags=TAGS)
def list_organizations(principal: CurrentPrincipal, q: SearchText = None, limit: Limit = 50,
                       cursor: Cursor = None) -> Page[Organization]:
    """Newest first; `q` matches the name or the domain anywhere in them."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Organization, developers.list_organizations(conn, q=q, cursor=cursor, limit=limit))


@router.post("/organizations", status_code=201, tags=TAGS,
             responses=problems(409, conflict="an organization of this name exists"))
def create_organization(body: OrganizationBody, principal: Writer) -> Organization:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Organization.model_validate(developers.create_organization(conn, principal, body.model_dump()))


@router.get("/organizations/{org_id}", tags=TAGS, responses=problems(404))
def get_organization(org_id: UUID, principal: CurrentPrincipal) -> Organization:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Organization.model_validate(developers.get_organization(conn, org_id))


@router.patch("/organizations/{org_id}", tags=TAGS,
              responses=problems(404, 409, conflict="an organization of this name exists"))
def update_organization(org_id: UUID, body: OrganizationChanges, principal: Writer) -> Organization:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Organization.model_validate(developers.update_organization(conn, principal, org_id,
                                                                          body.model_dump(exclude_unset=True)))


# ---------------------------------------------------------------- accounts

@router.get("/accounts", tags=TAGS)
def list_accounts(principal: CurrentPrincipal, provider: Annotated[str | None, Query(max_length=50)] = None,
                  developer_id: UUID | None = None, q: SearchText = None, limit: Limit = 50,
                  cursor: Cursor = None) -> Page[Account]:
    """Newest first; `q`: handles starting with it (a leading @ ignored)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(Account, developers.list_accounts(conn, provider=provider, developer_id=developer_id, q=q,
                                                         cursor=cursor, limit=limit))


@router.get("/accounts/{account_id}", tags=TAGS, responses=problems(404))
def get_account(account_id: UUID, principal: CurrentPrincipal) -> Account:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Account.model_validate(developers.get_account(conn, account_id))


# ---------------------------------------------------------------- merge suggestions

@router.get("/merge-suggestions", tags=TAGS)
def list_merge_suggestions(principal: CurrentPrincipal,
                           min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
                           developer_id: UUID | None = None, limit: Limit = 50,
                           cursor: Cursor = None) -> Page[MergeSuggestion]:
    """Open suggestions, most confident first, with their evidence and both developers."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        items, next_cursor = developers.list_suggestions(conn, min_confidence=min_confidence,
                                                         developer_id=developer_id, cursor=cursor, limit=limit)
        return Page[MergeSuggestion](items=[MergeSuggestion.model_validate(i) for i in items],
                                     next_cursor=next_cursor)


@router.post("/merge-suggestions/{suggestion_id}/accept", tags=TAGS,
             responses=problems(404, 409, conflict="the suggestion was decided, or a developer was merged or erased"))
def accept_merge_suggestion(suggestion_id: UUID, principal: Writer) -> MergeLog:
    """Merge the two developers (the older one stays); answers the merge log."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return MergeLog.model_validate(developers.merge_body(developers.accept_suggestion(conn, principal,
                                                                                          suggestion_id)))


@router.post("/merge-suggestions/{suggestion_id}/reject", tags=TAGS,
             responses=problems(404, 409, conflict="the suggestion was accepted: undo the merge instead"))
def reject_merge_suggestion(suggestion_id: UUID, principal: Writer) -> MergeSuggestion:
    """"Not the same person": remembered, never suggested again (also after either is merged with another)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return MergeSuggestion.model_validate(developers.reject_suggestion(conn, principal, suggestion_id))


# ---------------------------------------------------------------- merges

@router.post("/merges", status_code=201, tags=TAGS,
             responses=problems(409, conflict="a developer was merged into another or erased"))
def merge_developers(body: MergeBody, principal: Writer) -> MergeLog:
    """Merge `from_developer_id` into `into_developer_id`: its accounts, identifiers and activities move; it is
    kept with `merged_into`, so the merge can be undone exactly. Audited."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return MergeLog.model_validate(developers.merge_body(developers.merge(
            conn, principal, body.into_developer_id, body.from_developer_id, body.reason)))


@router.get("/merges", tags=TAGS)
def list_merges(principal: CurrentPrincipal, developer_id: UUID | None = None, limit: Limit = 50,
                cursor: Cursor = None) -> Page[MergeLog]:
    """Merges and unmerges, newest first (`developer_id`: those involving the developer on either side)."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return page_of(MergeLog, developers.list_merges(conn, developer_id=developer_id, cursor=cursor, limit=limit))


@router.post("/merges/{merge_id}/undo", tags=TAGS,
             responses=problems(404, 409, conflict="already undone, merged again since, or a developer was erased"))
def undo_merge(merge_id: UUID, principal: Writer) -> MergeLog:
    """Unmerge: exactly what the merge moved goes back and the merged developer is live again; the pair is
    remembered as two people. Answers the unmerge's log."""
    with db.tenant_transaction(principal.tenant_id) as conn:
        return MergeLog.model_validate(developers.merge_body(developers.unmerge(conn, principal, merge_id)))
