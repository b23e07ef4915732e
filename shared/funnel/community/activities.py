"""Activity ingestion (the API's one event and batches; CSV imports share its rules through ``imports``) and the
activity list.

Rules (shared/funnel/community/README-activities.md):
- who: exactly one of an account as the source knows it (created and resolved through ONE
  ``identity.resolve_accounts`` call per batch), an existing ``account_id`` or ``developer_id`` (a merged
  developer's activities go to the developer it was merged into), or only an ``anon_id``;
- what: ``resource_id`` or a resource found or created by (category, external_id); the activity carries the
  resource's category and group key (a cache for queries);
- idempotency: ``dedup_key``, else ``source:source_ref`` when a source_ref is given; a key seen before is a
  duplicate (answered with the first activity), never an error;
- consent: a tracking-derived activity (``is_tracking``) of a developer with ``consent_analytics = false`` is not
  stored (``skipped_consent``);
- a batch is all or nothing: every bad item is named (``body.items[i].field``) before anything is written.
Developer stats are a cache the rollup fills; ingestion does not touch them.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from funnel.community import identity
from funnel.community import store_activities as store
from funnel.community.identity import AccountIn
from funnel.db import Connection, Row
from funnel.observability import count
from funnel.platform import audit
from funnel.platform.errors import NotFound, ValidationFailed
from funnel.platform.pagination import Page
from funnel.platform.principal import Principal

# Observed behaviour, not something the developer chose to do in public: clicks (shortlinks, e-mail links), views,
# opens (e-mail pixels), visits, scans (QR codes), impressions and page views.
TRACKING_ACTIONS = frozenset({"click", "view", "open", "visit", "scan", "impression", "page_view", "pageview"})
# Sources whose every event is analytics or tracking (web analytics, the product's shortlinks and pixels).
TRACKING_SOURCES = frozenset({"ga", "posthog", "web_analytics", "analytics", "pixel", "shortlink", "tracking"})
MAX_REPORTED_ERRORS = 100


def is_tracking(source: str, action: str) -> bool:
    """Whether an activity is derived from tracking (withheld for a developer without analytics consent)."""
    return action.casefold() in TRACKING_ACTIONS or source.casefold() in TRACKING_SOURCES


def derived_dedup_key(dedup_key: str | None, source: str, source_ref: str | None) -> str | None:
    if dedup_key:
        return dedup_key
    return f"{source}:{source_ref}" if source_ref else None


def account_in(account: dict[str, Any], seen_at: datetime | None) -> AccountIn:
    return AccountIn(provider=account["provider"], external_user_id=account["external_user_id"],
                     handle=account.get("handle"), email=account.get("email"),
                     display_name=account.get("display_name"), org=account.get("org"),
                     profile_url=account.get("profile_url"), avatar_url=account.get("avatar_url"),
                     attributes=account.get("attributes") or {}, seen_at=seen_at)


@dataclass
class _Errors:
    found: list[dict[str, Any]] = field(default_factory=list)

    def add(self, loc: list[str | int], msg: str) -> None:
        self.found.append({"loc": loc, "msg": msg, "type": "value_error"})

    def raise_any(self) -> None:
        if self.found:
            first = self.found[0]
            more = f" (and {len(self.found) - 1} more)" if len(self.found) > 1 else ""
            raise ValidationFailed(f"{'.'.join(map(str, first['loc']))}: {first['msg']}{more}",
                                   errors=self.found[:MAX_REPORTED_ERRORS])


def _check_shape(items: Sequence[dict[str, Any]], locs: Sequence[list[str | int]], errors: _Errors) -> None:
    for item, loc in zip(items, locs, strict=True):
        who = [name for name in ("account", "account_id", "developer_id") if item.get(name) is not None]
        if len(who) > 1:
            errors.add([*loc, who[1]], f"give one of account, account_id or developer_id, not {' and '.join(who)}")
        elif not who and not item.get("anon_id"):
            errors.add([*loc, "account"], "an activity needs an account, account_id, developer_id or anon_id")
        if item.get("account") is not None:
            try:
                identity.validate_account(account_in(item["account"], None), [*loc, "account"])
            except ValidationFailed as exc:
                errors.found += exc.extra["errors"]
        if item.get("resource_id") is not None and item.get("resource") is not None:
            errors.add([*loc, "resource"], "give resource_id or resource, not both")


def ingest(conn: Connection, principal: Principal, items: Sequence[dict[str, Any]], *,
           loc: list[str | int]) -> dict[str, Any]:
    """Ingest ``items`` (ActivityBody dicts) all or nothing; ``loc`` is where they sit in the request
    (``["body"]`` for one, ``["body", "items"]`` for a batch: errors name ``body.items[i].field``)."""
    single = loc == ["body"]
    locs: list[list[str | int]] = [list(loc) if single else [*loc, i] for i in range(len(items))]
    errors = _Errors()
    _check_shape(items, locs, errors)
    errors.raise_any()

    # references: another tenant's rows are invisible (RLS), so they are as unknown as ids that never existed
    account_ids = sorted({i["account_id"] for i in items if i.get("account_id")}, key=str)
    accounts = {r["account_id"]: r["developer_id"] for r in store.accounts_by_ids(conn, account_ids)}
    developer_ids = sorted({i["developer_id"] for i in items if i.get("developer_id")}, key=str)
    live = {r["developer_id"]: r["live_id"] for r in store.live_developers(conn, developer_ids)}
    resource_ids = sorted({i["resource_id"] for i in items if i.get("resource_id")}, key=str)
    resources = {r["resource_id"]: r for r in store.resources_by_ids(conn, resource_ids)}
    for item, item_loc in zip(items, locs, strict=True):
        if item.get("account_id") and item["account_id"] not in accounts:
            errors.add([*item_loc, "account_id"], "no such account")
        if item.get("developer_id") and item["developer_id"] not in live:
            errors.add([*item_loc, "developer_id"], "no such developer")
        if item.get("resource_id") and item["resource_id"] not in resources:
            errors.add([*item_loc, "resource_id"], "no such resource")
    errors.raise_any()

    # the writes: accounts resolved in one call, resources upserted in one statement, activities in one
    to_resolve = [account_in(i["account"], i["occurred_at"]) for i in items if i.get("account") is not None]
    resolved = iter(identity.resolve_accounts(conn, to_resolve))
    inline = {(i["resource"]["category"], i["resource"]["external_id"]): i["resource"]
              for i in items if i.get("resource") is not None}
    for row in store.upsert_resources(conn, list(inline.values())) if inline else []:
        resources[(row["category"], row["external_id"])] = row

    rows: list[dict[str, Any]] = []
    for item in items:
        account_id, developer_id = item.get("account_id"), item.get("developer_id")
        if item.get("account") is not None:
            r = next(resolved)
            account_id, developer_id = r.account_id, r.developer_id
        elif account_id:
            developer_id = accounts[account_id]
        elif developer_id:
            developer_id = live[developer_id]
        resource = (resources[item["resource_id"]] if item.get("resource_id")
                    else resources[(item["resource"]["category"], item["resource"]["external_id"])]
                    if item.get("resource") else None)
        rows.append({"activity_id": uuid.uuid4(), "developer_id": developer_id, "account_id": account_id,
                     "anon_id": item.get("anon_id"), "resource_id": resource["resource_id"] if resource else None,
                     "action": item["action"], "occurred_at": item["occurred_at"], "source": item["source"],
                     "source_ref": item.get("source_ref"), "category": resource["category"] if resource else None,
                     "group_key": resource["group_key"] if resource else None,
                     "metadata": json.dumps(item["metadata"]) if item.get("metadata") is not None else None,
                     "dedup_key": derived_dedup_key(item.get("dedup_key"), item["source"], item.get("source_ref"))})

    withheld = store.developers_without_consent(conn, sorted({r["developer_id"] for r in rows if r["developer_id"]},
                                                             key=str))
    outcome: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        if row["developer_id"] in withheld and is_tracking(row["source"], row["action"]):
            outcome.append({"index": index, "status": "skipped_consent", "activity_id": None})
        else:
            kept.append(row)
            outcome.append({"index": index, "status": "inserted", "activity_id": row["activity_id"]})
    inserted = store.insert_activities(conn, kept) if kept else set()
    repeated = [o for o in outcome if o["status"] == "inserted" and o["activity_id"] not in inserted]
    if repeated:
        key_of = {r["activity_id"]: r["dedup_key"] for r in kept}
        first = store.activity_ids_by_dedup_key(conn, sorted({key_of[o["activity_id"]] for o in repeated}))
        for o in repeated:
            o["status"], o["activity_id"] = "duplicate", first[key_of[o["activity_id"]]]
    counts = {status: sum(1 for o in outcome if o["status"] == status)
              for status in ("inserted", "duplicate", "skipped_consent")}
    if inserted:
        count("ActivitiesIngested", len(inserted), tenant_id=principal.tenant_id)
    audit.record(conn, principal, "activity.ingest", "activity",
                 str(outcome[0]["activity_id"] or "skipped") if single else "batch", {"items": len(items), **counts})
    return {"inserted": counts["inserted"], "duplicates": counts["duplicate"],
            "skipped_consent": counts["skipped_consent"], "items": outcome}


def ingest_one(conn: Connection, principal: Principal, item: dict[str, Any]) -> dict[str, Any]:
    result = ingest(conn, principal, [item], loc=["body"])["items"][0]
    found = store.activity(conn, result["activity_id"]) if result["activity_id"] else None
    return {"status": result["status"], "activity": found}


def get_activity(conn: Connection, activity_id: UUID) -> Row:
    row = store.activity(conn, activity_id)
    if row is None:
        raise NotFound("activity not found")
    return row


def list_activities(conn: Connection, *, developer_id: UUID | None = None, account_id: UUID | None = None,
                    action: str | None = None, source: str | None = None, resource_id: UUID | None = None,
                    occurred_from: datetime | None = None, occurred_to: datetime | None = None,
                    cursor: str | None = None, limit: int = 50) -> Page:
    if occurred_from and occurred_to and occurred_to <= occurred_from:
        raise ValidationFailed.at(["query", "occurred_to"], "must be after occurred_from")
    return store.activities_page(conn, filters={"developer_id": developer_id, "account_id": account_id,
                                                "action": action, "source": source, "resource_id": resource_id},
                                 occurred_from=occurred_from, occurred_to=occurred_to, cursor=cursor, limit=limit)
