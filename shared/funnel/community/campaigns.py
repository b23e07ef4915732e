"""Campaigns, their budget entries and resources, attribution of conversions to campaigns, and ROI.

Decisions (also in README-campaigns.md and the routes' descriptions):

- **Money is exact and per currency.** Amounts are ``Decimal`` from the request (a JSON string or integer; a JSON
  number with a fraction is refused, it is a binary float) to ``numeric`` and back (a JSON string). A currency
  is an ISO 4217 code (``ISO_4217``, upper-cased); an amount has at most the currency's decimals (JPY none, USD
  two, KWD three). Totals are grouped by currency and never added across currencies; there is no conversion.
- **Names are unique per workspace** (409); ``end_date`` is on or after ``start_date`` (422 naming end_date).
- **Resource URLs** are normalised as everywhere (``funnel.platform.normalize.normalize_url``: http/https only).
  A ``campaign_id`` in a body that is not this workspace's is a 422 naming it; ids in a path are a 404 (another
  tenant's rows do not exist here).
- **Attribution.** A conversion is an activity whose action is one of the workspace's ``conversion_actions``
  (``attribution_settings``, one row per workspace; defaults ``DEFAULT_SETTINGS``). Its touches are the activities
  of the same person (its developer; for an activity without one, the developer its anonymous id was last seen
  with, so a shortlink click before signing in counts; else the anonymous id) at most ``lookback_days`` before it
  (it included)
  that name a campaign: through their resource (``resources.campaign_id``), their ``metadata.utm_campaign``
  (equal to the campaign's ``attributes.utm_campaign`` or its name) or their ``metadata.shortlink_id`` (the
  shortlink's campaign). ``touch_weights`` shares one conversion out between the campaigns of its touches
  (first touch, last touch, linear, time decay ``2^(-age/half_life)``); the weights of a conversion sum to
  exactly 1. ``activity_campaigns`` holds one row per conversion and campaign credited (the touches themselves
  get no rows). Recomputing a window deletes every row of the window's activities and inserts the new ones in
  one transaction, under a per-tenant lock: the same inputs give the same rows.
- **ROI** of a campaign: conversions = the sum of its weights; cost = its budget entries in the campaign's
  currency (entries in other currencies are listed apart); cost per conversion (4 decimals) and conversions per
  unit of cost (12 decimals), rounded half-even.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import UUID

import psycopg

from funnel.community import store_campaigns as store
from funnel.db import Connection, Row
from funnel.platform import audit
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.normalize import normalize_url
from funnel.platform.pagination import Page, decode_cursor, encode_cursor
from funnel.platform.principal import Principal

# Active ISO 4217 codes and their minor units (decimals): most have two, the others are listed by their count.
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF
CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR
LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT
TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
ZWL""".split())
MINOR_UNITS = {**dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
               **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3), "CLF": 4, "UYW": 4}

MODELS = ("first_touch", "last_touch", "linear", "time_decay")
DEFAULT_SETTINGS: dict[str, Any] = {"model": "last_touch", "half_life_days": 7.0, "lookback_days": 30,
                                    "conversion_actions": ["signup"], "updated_at": None}
WEIGHT_PLACES = Decimal("1e-12")  # a weight's decimals as stored
COST_PER_CONVERSION_PLACES = Decimal("0.0001")
CONVERSIONS_PER_COST_PLACES = Decimal("1e-12")
MAX_WINDOW = timedelta(days=366)  # one recomputation is one transaction: a year of conversions at most


# ---------------------------------------------------------------- money

def currency(raw: str, loc: list[str | int]) -> str:
    code = raw.upper()
    if code not in ISO_4217:
        raise ValidationFailed.at(loc, f"{raw!r} is not an ISO 4217 currency code")
    return code


def check_amount(amount: Decimal, code: str, loc: list[str | int]) -> Decimal:
    places = MINOR_UNITS.get(code, 2)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places and amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ValidationFailed.at(loc, f"{code} amounts have at most {places} decimals")
    return amount


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros (1.500000000000 -> 1.5); integers keep their digits."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


# ---------------------------------------------------------------- pages

def _after(cursor: str | None) -> tuple[datetime, UUID] | None:
    if not cursor:
        return None
    moment, last_id = decode_cursor(cursor, 2)
    try:
        at, position = datetime.fromisoformat(moment), UUID(last_id)
    except ValueError as exc:
        raise ValidationFailed.at(["query", "cursor"], "not a cursor this list gave; pass `next_cursor` as it "
                                                       "came, or leave it out for the first page") from exc
    if at.tzinfo is None:
        raise ValidationFailed.at(["query", "cursor"], "not a cursor this list gave")
    return at, position


def _page(rows: list[Row], limit: int, id_column: str) -> Page:
    return Page.from_rows(rows, limit, lambda r: encode_cursor([r["created_at"].isoformat(), str(r[id_column])]))


def _like(q: str | None) -> str | None:
    if q is None or not q.strip():
        return None
    return "%" + q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# ---------------------------------------------------------------- campaigns

def clean_campaign_fields(fields: dict[str, Any], current: Row | None = None) -> dict[str, Any]:
    merged = {**(current or {}), **fields}
    if "currency" in fields and fields["currency"] is not None:
        fields["currency"] = currency(fields["currency"], ["body", "currency"])
    budget_total = fields["budget_total"] if "budget_total" in fields else merged.get("budget_total")
    if budget_total is not None and ("budget_total" in fields or "currency" in fields):
        if budget_total < 0:
            raise ValidationFailed.at(["body", "budget_total"], "a budget is zero or more")
        # a new currency must fit the budget too (USD 19.99 cannot become JPY 19.99)
        check_amount(budget_total, fields.get("currency") or merged.get("currency") or "JPY", ["body", "budget_total"])
    if "attributes" in fields and fields["attributes"] is not None:
        fields["attributes"] = {k: v for k, v in fields["attributes"].items() if v is not None}
    for required in ("name", "currency", "attributes"):
        if required in fields and fields[required] is None:
            raise ValidationFailed.at(["body", required], "may not be null")
    start, end = merged.get("start_date"), merged.get("end_date")
    if isinstance(start, date) and isinstance(end, date) and end < start:
        raise ValidationFailed.at(["body", "end_date"], "the end date is before the start date")
    return fields


def _name_conflict(exc: psycopg.errors.UniqueViolation) -> Conflict:
    return Conflict("a campaign of this name exists") if "name" in (exc.diag.constraint_name or "") else \
        Conflict(str(exc.diag.message_primary))


def get_campaign(conn: Connection, campaign_id: UUID, *, for_update: bool = False) -> Row:
    row = store.campaign(conn, campaign_id, for_update=for_update)
    if row is None:
        raise NotFound("campaign not found")
    return row


def list_campaigns(conn: Connection, *, channel: str | None, q: str | None, active_on: date | None,
                   cursor: str | None, limit: int) -> Page:
    rows = store.campaigns_page(conn, channel=channel, q=_like(q), active_on=active_on, after=_after(cursor),
                                limit=limit)
    return _page(rows, limit, "campaign_id")


def create_campaign(conn: Connection, principal: Principal, fields: dict[str, Any]) -> Row:
    fields = clean_campaign_fields(fields)
    try:
        with conn.transaction():
            campaign_id = store.insert_campaign(conn, fields)
    except psycopg.errors.UniqueViolation as exc:
        raise _name_conflict(exc) from exc
    audit.record(conn, principal, "community.campaign.create", "campaign", campaign_id, {"name": fields["name"]})
    return get_campaign(conn, campaign_id)


def update_campaign(conn: Connection, principal: Principal, campaign_id: UUID, changes: dict[str, Any]) -> Row:
    current = get_campaign(conn, campaign_id, for_update=True)
    changes = clean_campaign_fields(changes, current)
    try:
        with conn.transaction():
            store.update_campaign(conn, campaign_id, changes)
    except psycopg.errors.UniqueViolation as exc:
        raise _name_conflict(exc) from exc
    audit.record(conn, principal, "community.campaign.update", "campaign", campaign_id, {"fields": sorted(changes)})
    return get_campaign(conn, campaign_id)


def delete_campaign(conn: Connection, principal: Principal, campaign_id: UUID) -> None:
    """Its budget entries and attribution rows go with it; its resources and shortlinks stay, unlinked."""
    if not store.delete_campaign(conn, campaign_id):
        raise NotFound("campaign not found")
    audit.record(conn, principal, "community.campaign.delete", "campaign", campaign_id)


# ---------------------------------------------------------------- budgets

def _budget_fields(fields: dict[str, Any], current: Row | None = None) -> dict[str, Any]:
    for required in ("category", "amount", "currency", "spent_at", "source", "meta"):
        if required in fields and fields[required] is None:
            raise ValidationFailed.at(["body", required], "may not be null")
    if fields.get("currency") is not None:
        fields["currency"] = currency(fields["currency"], ["body", "currency"])
    code = fields.get("currency") or (current or {}).get("currency") or "JPY"
    amount = fields.get("amount", (current or {}).get("amount"))
    if amount is not None and ("amount" in fields or "currency" in fields):
        check_amount(amount, code, ["body", "amount"])
    return fields


def list_budgets(conn: Connection, campaign_id: UUID, *, category: str | None, currency_code: str | None,
                 spent_from: date | None, spent_to: date | None, cursor: str | None, limit: int) -> Page:
    get_campaign(conn, campaign_id)
    rows = store.budgets_page(conn, campaign_id, category=category,
                              currency=currency_code.upper() if currency_code else None, spent_from=spent_from,
                              spent_to=spent_to, after=_after(cursor), limit=limit)
    return _page(rows, limit, "budget_id")


def get_budget(conn: Connection, campaign_id: UUID, budget_id: UUID) -> Row:
    row = store.budget(conn, campaign_id, budget_id)
    if row is None:
        raise NotFound("budget entry not found")
    return row


def create_budget(conn: Connection, principal: Principal, campaign_id: UUID, fields: dict[str, Any]) -> Row:
    get_campaign(conn, campaign_id)
    row = store.insert_budget(conn, campaign_id, _budget_fields(fields))
    audit.record(conn, principal, "community.budget.create", "budget", row["budget_id"],
                 {"campaign_id": str(campaign_id), "amount": str(row["amount"]), "currency": row["currency"]})
    return row


def update_budget(conn: Connection, principal: Principal, campaign_id: UUID, budget_id: UUID,
                  changes: dict[str, Any]) -> Row:
    current = get_budget(conn, campaign_id, budget_id)
    row = store.update_budget(conn, campaign_id, budget_id, _budget_fields(changes, current))
    if row is None:
        raise NotFound("budget entry not found")
    audit.record(conn, principal, "community.budget.update", "budget", budget_id,
                 {"campaign_id": str(campaign_id), "fields": sorted(changes)})
    return row


def delete_budget(conn: Connection, principal: Principal, campaign_id: UUID, budget_id: UUID) -> None:
    if not store.delete_budget(conn, campaign_id, budget_id):
        raise NotFound("budget entry not found")
    audit.record(conn, principal, "community.budget.delete", "budget", budget_id, {"campaign_id": str(campaign_id)})


# ---------------------------------------------------------------- resources

def _resource_fields(conn: Connection, fields: dict[str, Any]) -> dict[str, Any]:
    for required in ("category", "attributes"):
        if required in fields and fields[required] is None:
            raise ValidationFailed.at(["body", required], "may not be null")
    if fields.get("url") is not None:
        fields["url"] = normalize_url(fields["url"], ["body", "url"])
    if fields.get("campaign_id") is not None and not store.campaigns_exist(conn, [fields["campaign_id"]]):
        raise ValidationFailed.at(["body", "campaign_id"], "not found in this workspace", "reference")
    return fields


def _resource_conflict(exc: psycopg.errors.UniqueViolation) -> Conflict:
    return Conflict("a resource of this category has this external_id")


def list_resources(conn: Connection, *, category: str | None, group_key: str | None, campaign_id: UUID | None,
                   cursor: str | None, limit: int) -> Page:
    rows = store.resources_page(conn, category=category, group_key=group_key, campaign_id=campaign_id,
                                after=_after(cursor), limit=limit)
    return _page(rows, limit, "resource_id")


def get_resource(conn: Connection, resource_id: UUID) -> Row:
    row = store.resource(conn, resource_id)
    if row is None:
        raise NotFound("resource not found")
    return row


def create_resource(conn: Connection, principal: Principal, fields: dict[str, Any]) -> Row:
    fields = _resource_fields(conn, fields)
    try:
        with conn.transaction():
            row = store.insert_resource(conn, fields)
    except psycopg.errors.UniqueViolation as exc:
        raise _resource_conflict(exc) from exc
    audit.record(conn, principal, "community.resource.create", "resource", row["resource_id"],
                 {"category": row["category"]})
    return row


def update_resource(conn: Connection, principal: Principal, resource_id: UUID, changes: dict[str, Any]) -> Row:
    get_resource(conn, resource_id)
    changes = _resource_fields(conn, changes)
    try:
        with conn.transaction():
            row = store.update_resource(conn, resource_id, changes)
    except psycopg.errors.UniqueViolation as exc:
        raise _resource_conflict(exc) from exc
    if row is None:
        raise NotFound("resource not found")
    audit.record(conn, principal, "community.resource.update", "resource", resource_id, {"fields": sorted(changes)})
    return row


def delete_resource(conn: Connection, principal: Principal, resource_id: UUID) -> None:
    """Its activities and shortlinks stay, without the resource."""
    if not store.delete_resource(conn, resource_id):
        raise NotFound("resource not found")
    audit.record(conn, principal, "community.resource.delete", "resource", resource_id)


# ---------------------------------------------------------------- attribution rules (pure)

@dataclass(frozen=True)
class Touch:
    """An activity of the converting person that names a campaign (one per activity and campaign)."""
    activity_id: UUID
    campaign_id: UUID
    occurred_at: datetime


def _exact_shares(shares: dict[UUID, Decimal]) -> dict[UUID, Decimal]:
    """Shares rounded to WEIGHT_PLACES that sum to exactly 1: the rounding's remainder goes to the largest share
    (the lowest campaign id among equals), so that a stored conversion always weighs 1."""
    total = sum(shares.values(), Decimal(0))
    rounded = {c: (s / total).quantize(WEIGHT_PLACES, ROUND_HALF_EVEN) for c, s in shares.items()}
    largest = min(rounded, key=lambda c: (-rounded[c], str(c)))
    rounded[largest] += Decimal(1) - sum(rounded.values(), Decimal(0))
    return {c: w for c, w in rounded.items() if w > 0}


def _minus_days(moment: datetime, days: int) -> datetime:
    """``moment`` less ``days``, at the earliest datetime.min (a window from the year 1 has no earlier touches)."""
    try:
        return moment - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=moment.tzinfo)


def touch_weights(converted_at: datetime, touches: Iterable[Touch], *, model: str, half_life_days: float,
                  lookback_days: int) -> dict[UUID, Decimal]:
    """The share of one conversion each campaign gets, from the person's touches at most ``lookback_days`` before
    it (a touch at the conversion's own time counts). Empty without such touches; else the shares sum to 1.

    - first_touch / last_touch: all to the campaign of the earliest / latest touch (ties by activity id, then
      campaign id);
    - linear: 1/n to each of the n touches (a campaign touched twice gets 2/n);
    - time_decay: a touch ``age`` days before the conversion weighs ``2^(-age / half_life_days)``, normalised."""
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r}")
    earliest = _minus_days(converted_at, lookback_days)
    eligible = sorted((t for t in touches if earliest <= t.occurred_at <= converted_at),
                      key=lambda t: (t.occurred_at, str(t.activity_id), str(t.campaign_id)))
    if not eligible:
        return {}
    if model == "first_touch":
        return {eligible[0].campaign_id: Decimal(1)}
    if model == "last_touch":
        return {eligible[-1].campaign_id: Decimal(1)}
    shares: dict[UUID, Decimal] = defaultdict(Decimal)
    youngest = (converted_at - eligible[-1].occurred_at).total_seconds() / 86400
    for touch in eligible:
        if model == "linear":
            shares[touch.campaign_id] += Decimal(1)
        else:
            # relative to the youngest touch (which weighs 1): normalising gives the same shares, and a tiny
            # half-life cannot make every weight underflow to 0
            age_days = (converted_at - touch.occurred_at).total_seconds() / 86400
            shares[touch.campaign_id] += Decimal(math.pow(2.0, -(age_days - youngest) / half_life_days))
    return _exact_shares(shares)


# ---------------------------------------------------------------- attribution

def attribution_settings(conn: Connection) -> dict[str, Any]:
    row = store.attribution_settings(conn)
    return {**DEFAULT_SETTINGS, **(row or {})}


def save_attribution_settings(conn: Connection, principal: Principal, settings: dict[str, Any]) -> Row:
    settings = {**settings, "conversion_actions": sorted(set(settings["conversion_actions"]))}
    row = store.save_attribution_settings(conn, settings)
    audit.record(conn, principal, "community.attribution.settings", "attribution_settings", principal.tenant_id,
                 {k: settings[k] for k in ("model", "half_life_days", "lookback_days", "conversion_actions")})
    return row


def recompute(conn: Connection, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
    """Attribute the conversions of [from, to) again with the request's settings (the workspace's where omitted).
    One transaction: the window's old rows are deleted and the new ones inserted, so a reader sees one or the
    other, and running it twice leaves the same rows."""
    start, end = request["from_"], request["to"]
    if end <= start:
        raise ValidationFailed.at(["body", "to"], "the window ends after it starts")
    if end - start > MAX_WINDOW:
        raise ValidationFailed.at(["body", "to"], "a window is at most 366 days; recompute longer spans in parts")
    saved = attribution_settings(conn)
    settings: dict[str, Any] = {key: request[key] if request.get(key) is not None else saved[key]
                                for key in ("model", "half_life_days", "lookback_days", "conversion_actions")}
    settings["conversion_actions"] = sorted(set(settings["conversion_actions"]))
    store.lock_attribution(conn)
    found = store.conversions(conn, actions=settings["conversion_actions"], start=start, end=end)
    people = sorted({c["person"] for c in found})
    by_person: dict[str, list[Touch]] = defaultdict(list)
    if people:
        earliest = _minus_days(start, settings["lookback_days"])
        for t in store.touches(conn, people=people, start=earliest, end=end):
            by_person[t["person"]].append(Touch(t["activity_id"], t["campaign_id"], t["occurred_at"]))
    rows: list[tuple[UUID, UUID, Decimal]] = []
    attributed = 0
    for conversion in found:
        weights = touch_weights(conversion["occurred_at"], by_person[conversion["person"]], model=settings["model"],
                                half_life_days=settings["half_life_days"], lookback_days=settings["lookback_days"])
        attributed += bool(weights)
        rows += [(conversion["activity_id"], campaign_id, weight) for campaign_id, weight in sorted(
            weights.items(), key=lambda item: str(item[0]))]
    deleted = store.delete_window_attribution(conn, start=start, end=end)
    written = store.insert_attribution(conn, rows)
    outcome = {**settings, "conversions": len(found), "attributed": attributed, "deleted": deleted,
               "written": written}
    audit.record(conn, principal, "community.attribution.recompute", "attribution", f"{start.isoformat()}/"
                 f"{end.isoformat()}", {k: v for k, v in outcome.items()})
    return outcome


def roi(conn: Connection, campaign_id: UUID, *, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """The campaign's ROI in its own currency; conversions of [start, end) when given (by conversion time)."""
    campaign = get_campaign(conn, campaign_id)
    code = campaign["currency"]
    conversions = store.attributed_conversions(conn, campaign_id, start=start, end=end)
    costs = store.cost_by_currency(conn, campaign_id)
    cost = sum((Decimal(r["amount"]) for r in costs if r["currency"] == code), Decimal(0))
    others = [{"currency": r["currency"], "amount": r["amount"]} for r in costs if r["currency"] != code]
    return {
        "campaign_id": campaign_id, "currency": code, "conversions": _plain(conversions), "cost": cost,
        "other_currencies": others,
        "cost_per_conversion": _plain((cost / conversions).quantize(COST_PER_CONVERSION_PLACES, ROUND_HALF_EVEN))
        if conversions > 0 else None,
        "conversions_per_cost": _plain((conversions / cost).quantize(CONVERSIONS_PER_COST_PLACES, ROUND_HALF_EVEN))
        if cost > 0 else None,
    }


