"""One identity across the product (issue #16, item 5): outreach companies, e-mail recipients and form
submissions meet the community's developers and organizations. Decisions: README-identity-across.md.

- **Touches** (``funnel.community.touches``) come from other areas on the community touches queue and are recorded
  here, once each (their dedup keys), in one tenant transaction:
  - an e-mail click (a person's: e-mail tracking's traffic rules already dropped machines) is an activity
    ``click`` / source ``email`` of the developer with that address, resolved through ``identity.resolve_accounts``
    as an account of provider ``email`` (external id: the normalised address), so a recipient met first by e-mail
    and later by signing up is one developer (the same certain e-mail identifier) and the e-mail stays their first
    touch; a developer without analytics consent gets nothing, and no account is created for them; a company
    mailbox (``info@``, ``sales@``: not a person) is an activity of the organization at its domain instead;
  - a form submission is an activity ``form_submission`` / source ``outreach`` of the organization whose domain is
    the company's (an activity with ``org_id`` and no developer).
- **Channels name DRM campaigns through resources**: an e-mail campaign is the resource (``email_campaign``, its
  id), an outreach task (``outreach_task``, its id); the activity points at it, and the resource's ``campaign_id``
  (set by ``link_channel``) is the DRM campaign attribution credits. Linking later credits earlier clicks too.
- **Organization <-> company**: an outreach contact is a company of an organization when the organization's
  primary domain equals the contact's website domain or its e-mail address's domain, both normalised as identity
  normalises domains (``matching.normalize_domain``); a free-mail domain (gmail.com...) never links.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from funnel import db
from funnel.community import activities, matching
from funnel.community import store_crossarea as store
from funnel.community.touches import EmailClick, FormSubmission
from funnel.db import Connection, Row
from funnel.observability import count
from funnel.platform import audit
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.principal import Principal
from funnel.settings import get_settings

EMAIL_PROVIDER = "email"
EMAIL_CAMPAIGN = "email_campaign"
OUTREACH_TASK = "outreach_task"
CHANNEL_CATEGORIES = (EMAIL_CAMPAIGN, OUTREACH_TASK)
# The first-touch sources the funnel names; every other source counts as "other".
FIRST_TOUCH_SOURCES = ("email", "outreach", "shortlink")
PROFILE_TOUCHES = 20
MAX_COMPANIES = 200
NOT_CONTACTED = "not_contacted"


# ---------------------------------------------------------------- the rules (pure)

def company_domain(domain: str | None) -> str | None:
    """A domain that may link a company and an organization: normalised as identity does, never a free-mail one."""
    normalized = matching.normalize_domain(domain)
    return normalized if normalized and normalized not in matching.FREE_MAIL_DOMAINS else None


def email_domain(address: str | None) -> str | None:
    """The company domain of an e-mail address (None for a free-mail address or no address)."""
    email = matching.normalize_email(address)
    return company_domain(email.domain) if email and not email.free_mail else None


def link_reason(org_domain: str | None, contact: dict[str, Any]) -> str | None:
    """Why an outreach contact is a company of the organization at ``org_domain``: ``domain`` (its website's),
    ``email_domain`` (its e-mail address's), or None."""
    org = company_domain(org_domain)
    if org is None:
        return None
    if company_domain(contact.get("domain")) == org:
        return "domain"
    if email_domain(contact.get("email")) == org:
        return "email_domain"
    return None


def first_touch_source(source: str) -> str:
    return source if source in FIRST_TOUCH_SOURCES else "other"


def shortlink_key_of(url: str | None) -> tuple[str, str] | None:
    """(host, key) of a URL shaped like a shortlink (``https://host/s/key``), else None."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    segments = parts.path.split("/")
    if parts.scheme not in ("http", "https") or len(segments) != 3 or segments[1] != "s" or not segments[2]:
        return None
    return (parts.hostname or "").lower(), segments[2]


def matching_shortlinks(urls: Iterable[str], links: Sequence[dict[str, Any]], default_host: str) -> list[dict]:
    """The tenant's shortlinks among ``urls``: a link's key on its own host, or on the product's default host
    for a link made without a shortlink domain (host '')."""
    by_key = {link["key"]: link for link in links}
    found: dict[str, dict[str, Any]] = {}
    for url in urls:
        parsed = shortlink_key_of(url)
        if parsed is None or parsed[1] not in by_key:
            continue
        link = by_key[parsed[1]]
        if parsed[0] == (link["host"] or default_host):
            found.setdefault(str(link["shortlink_id"]), link)
    return list(found.values())


def _actor(tenant_id: UUID, what: str) -> Principal:
    return Principal(tenant_id=str(tenant_id), user_id=what, role="member")


def _default_host() -> str:
    return (urlsplit(get_settings().public_base_url).hostname or "").lower()


def _shortlinks(conn: Connection, urls: Sequence[str]) -> list[dict[str, Any]]:
    keys = sorted({parsed[1] for parsed in map(shortlink_key_of, urls) if parsed})
    return matching_shortlinks(urls, store.shortlinks_by_keys(conn, keys), _default_host()) if keys else []


# ---------------------------------------------------------------- touches

def record(touch: EmailClick | FormSubmission) -> str:
    """Record one touch (the consumer's entry). Returns the outcome: ``inserted``, ``duplicate``,
    ``skipped_consent``, ``no_organization`` or ``not_an_address``."""
    with db.tenant_transaction(str(touch.tenant_id)) as conn:
        outcome = (record_email_click(conn, touch) if isinstance(touch, EmailClick)
                   else record_form_submission(conn, touch))
    count(f"CommunityTouches{outcome.title().replace('_', '')}", tenant_id=str(touch.tenant_id))
    return outcome


def record_email_click(conn: Connection, touch: EmailClick) -> str:
    dedup_key = f"email:click:{touch.touch_id}"
    if store.activity_by_dedup_key(conn, dedup_key) is not None:
        return "duplicate"
    address = matching.normalize_email(touch.email)
    if address is None:
        return "not_an_address"
    metadata: dict[str, Any] = {"email_campaign_id": str(touch.email_campaign_id),
                                "email_message_id": str(touch.email_message_id), "url": touch.url,
                                "reminder_round": touch.reminder_round}
    links = _shortlinks(conn, [touch.url] if touch.url else [])
    if links:  # the link's own redirect records its click; this one credits the e-mail's DRM campaign
        metadata["via_shortlink_id"], metadata["shortlink_key"] = str(links[0]["shortlink_id"]), links[0]["key"]
    if not address.personal:  # a company mailbox is the company's, not a person's
        domain = company_domain(address.domain)
        orgs = store.organizations_at_domain(conn, domain) if domain else []
        if not orgs:
            return "no_organization"
        return _org_activity(conn, touch, orgs[0]["org_id"], _email_campaign_resource(conn, touch), "click",
                             "email", metadata, dedup_key)
    owners = store.developers_of_email(conn, address.value)
    if any(not owner["consent_analytics"] for owner in owners):
        return "skipped_consent"  # before resolution: nothing, not even an account, is written for them
    resource = _email_campaign_resource(conn, touch)
    item = {"account": {"provider": EMAIL_PROVIDER, "external_user_id": address.value,
                        "email": matching.clean_address(touch.email), "display_name": touch.name,
                        "org": touch.company},
            "action": "click", "source": "email", "occurred_at": touch.occurred_at,
            "resource_id": resource["resource_id"], "metadata": metadata, "source_ref": None, "dedup_key": dedup_key}
    result = activities.ingest(conn, _actor(touch.tenant_id, f"email_campaign:{touch.email_campaign_id}"), [item],
                               loc=["body"])
    return str(result["items"][0]["status"])


def _email_campaign_resource(conn: Connection, touch: EmailClick) -> Row:
    return store.ensure_resource(conn, EMAIL_CAMPAIGN, str(touch.email_campaign_id), None)


def record_form_submission(conn: Connection, touch: FormSubmission) -> str:
    dedup_key = f"outreach:form:{touch.touch_id}"
    if store.activity_by_dedup_key(conn, dedup_key) is not None:
        return "duplicate"
    domain = company_domain(touch.domain)
    orgs = store.organizations_at_domain(conn, domain) if domain else []
    if not orgs:
        return "no_organization"
    resource = store.ensure_resource(conn, OUTREACH_TASK, str(touch.task_id), None)
    links = _shortlinks(conn, touch.urls)
    metadata = {"task_id": str(touch.task_id), "target_id": str(touch.target_id),
                "contact_id": str(touch.contact_id) if touch.contact_id else None, "company_name": touch.company_name,
                "domain": domain, "target_url": touch.target_url,
                "shortlink_ids": [str(link["shortlink_id"]) for link in links],
                "shortlink_keys": [link["key"] for link in links]}
    return _org_activity(conn, touch, orgs[0]["org_id"], resource, "form_submission", "outreach", metadata,
                         dedup_key)


def _org_activity(conn: Connection, touch: EmailClick | FormSubmission, org_id: UUID, resource: Row, action: str,
                  source: str, metadata: dict[str, Any], dedup_key: str) -> str:
    activity_id = store.insert_org_activity(conn, {
        "org_id": org_id, "resource_id": resource["resource_id"], "action": action, "occurred_at": touch.occurred_at,
        "source": source, "source_ref": None, "category": resource["category"], "group_key": None,
        "metadata": metadata, "dedup_key": dedup_key})
    if activity_id is None:
        return "duplicate"
    audit.record(conn, f"{touch.kind}:{touch.touch_id}"[:200], "activity.ingest", "activity", activity_id,
                 {"org_id": str(org_id), "action": action, "source": source})
    return "inserted"


# ---------------------------------------------------------------- channels named by DRM campaigns

def _channel(conn: Connection, category: str, channel_id: UUID) -> Row:
    row = store.email_campaign(conn, channel_id) if category == EMAIL_CAMPAIGN else store.outreach_task(conn,
                                                                                                       channel_id)
    if row is None:
        raise NotFound("e-mail campaign not found" if category == EMAIL_CAMPAIGN else "outreach task not found")
    return row


def _campaign(conn: Connection, campaign_id: UUID) -> None:
    if not store.campaign_exists(conn, campaign_id):
        raise NotFound("campaign not found")


def link_channel(conn: Connection, principal: Principal, campaign_id: UUID, category: str, channel_id: UUID) -> Row:
    """The e-mail campaign or outreach task names ``campaign_id`` (instead of any it named before)."""
    assert category in CHANNEL_CATEGORIES, category
    _campaign(conn, campaign_id)
    channel = _channel(conn, category, channel_id)
    row = store.link_resource(conn, category, str(channel_id), channel["name"], campaign_id)
    audit.record(conn, principal, "campaign.link_channel", "campaign", campaign_id,
                 {"category": category, "channel_id": str(channel_id)})
    return row


def unlink_channel(conn: Connection, principal: Principal, campaign_id: UUID, category: str,
                   channel_id: UUID) -> None:
    _campaign(conn, campaign_id)
    if not store.unlink_resource(conn, category, str(channel_id), campaign_id):
        raise NotFound("this campaign does not name that channel")
    audit.record(conn, principal, "campaign.unlink_channel", "campaign", campaign_id,
                 {"category": category, "channel_id": str(channel_id)})


def channels(conn: Connection, campaign_id: UUID) -> list[Row]:
    _campaign(conn, campaign_id)
    return store.linked_resources(conn, campaign_id, CHANNEL_CATEGORIES)


# ---------------------------------------------------------------- the organization's outreach and the 360

def companies(conn: Connection, org: Row) -> list[dict[str, Any]]:
    """The outreach contacts of the organization's domain, with their outreach status."""
    domain = company_domain(org.get("domain_primary"))
    if domain is None:
        return []
    out = []
    for row in store.companies_at_domains(conn, [domain], MAX_COMPANIES):
        reason = link_reason(domain, row)
        if reason is None:  # the SQL's candidates, confirmed by the rule
            continue
        company = {k: v for k, v in row.items() if k not in ("target_status", "created_at")}
        out.append({**company, "linked_by": reason, "outreach_status": row["target_status"] or NOT_CONTACTED})
    return out


def organization_outreach(conn: Connection, org: Row) -> dict[str, Any]:
    return {"org_id": org["org_id"], "domain": company_domain(org.get("domain_primary")),
            "companies": companies(conn, org), "touches": store.org_activities(conn, org["org_id"], PROFILE_TOUCHES)}


def profile_additions(conn: Connection, developer: Row, organization: Row | None) -> dict[str, Any]:
    """What the 360 profile adds from other areas: the developer's e-mail clicks, its organization's outreach
    touches and the organization's outreach companies."""
    return {"email_clicks": store.developer_activities_of_source(conn, developer["developer_id"], "email",
                                                                 PROFILE_TOUCHES),
            "organization_touches": store.org_activities(conn, organization["org_id"], PROFILE_TOUCHES)
            if organization else [],
            "organization_companies": companies(conn, organization) if organization else []}


# ---------------------------------------------------------------- the first-touch funnel

def first_touch_funnel(conn: Connection, *, touched_from: datetime | None,
                       touched_to: datetime | None) -> dict[str, Any]:
    """Developers by first-touch source (email, outreach, shortlink, other) and how many reached adoption, as of
    the last stats rollup (developer_stats keeps each developer's first touch and first adoption)."""
    if touched_from and touched_to and touched_to <= touched_from:
        raise ValidationFailed.at(["query", "touched_to"], "must be after touched_from")
    adoption = store.adoption_actions(conn)
    counted = store.first_touch_counts(conn, sources=FIRST_TOUCH_SOURCES, touched_from=touched_from,
                                       touched_to=touched_to)
    rows = {r["source"]: r for r in counted}
    sources = []
    for source in (*FIRST_TOUCH_SOURCES, "other"):
        touched, adopted = (int(rows[source]["touched"]), int(rows[source]["adopted"])) if source in rows else (0, 0)
        sources.append({"source": source, "touched": touched, "adopted": adopted,
                        "adoption_rate": round(adopted / touched, 4) if touched else None})
    return {"adoption_actions": adoption, "sources": sources,
            "touched": sum(s["touched"] for s in sources), "adopted": sum(s["adopted"] for s in sources)}
