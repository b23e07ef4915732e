"""The community API's rules over identity: developer search and the 360 profile, manual developers and their
changes, erasure, organizations, accounts, merge suggestions and merges. Resolution, merge and unmerge
themselves are ``funnel.community.identity``'s; this module checks what the API adds around them.

Decisions (also in the routes' descriptions):

- **Search and lists show live developers** (``merged_into IS NULL``). Erased developers are left out unless
  ``include_erased`` (they match no text any more: their names, e-mails and handles are gone).
- **Search matches word prefixes**, not any substring: each word of ``q`` must start a term of the developer
  (a word of its or its accounts' display names, an e-mail address, a handle, the romaji reading identity stored
  for a kanji/kana name), or ``q`` is a whole e-mail address (normalised as identity does: Gmail dots, +tags),
  or a part of its organization's name. Why prefixes: under row-level security PostgreSQL uses an index only for
  leakproof operators, which ILIKE and the trigram operators are not (community_0002_search_terms).
- **A merged developer's id still answers** ``GET /v1/developers/{id}`` with 200: its own record with
  ``merged_into`` and ``current_developer_id`` (the end of the chain), so old links keep working; its lists are
  empty (its rows moved). Writes to a merged developer are a 409 naming the developer it was merged into.
- **Erasure** removes what names the person: the developer's name, e-mail and tags; every account's handle,
  e-mail, name, profile and avatar URLs and attributes, and its external id (a tombstone ``erased:<account_id>``
  replaces it, so the provider's id of the person is not kept); identifiers are deleted; activities keep their
  action, time, resource and source (the aggregates) and lose the personal fields of their metadata
  (``PERSONAL_METADATA_KEYS``) and their anonymous visitor id; merge logs and decided suggestions keep ids and
  decisions, their evidence is replaced; open suggestions go. Developers merged into the erased one earlier (the
  same person) are erased with it. ``consent_analytics`` becomes false. An erased developer cannot be merged,
  accepted in a suggestion, unmerged or changed (409). Nothing identifying is left to link a later event to it: a
  new event from the same provider account creates a new developer (the person is new to the product).
- **Creating a developer with accounts** resolves them through ``identity.resolve_accounts`` (the one ingest
  path). Accounts that certain evidence links to an existing developer are a 409 naming it (change that
  developer instead); accounts that resolve to several new developers are merged into one (logged, by the caller).
- Ids in a body that are looked up (``org_id``, merge developer ids) are a 422 naming the field when this tenant
  has no such row; ids in a path are a 404. Another tenant's rows do not exist here (row-level security).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import psycopg

from funnel.community import crossarea, identity, matching, names, store_identity
from funnel.community import store_developers as store
from funnel.community.identity import AccountIn
from funnel.db import Connection, Row
from funnel.platform import audit
from funnel.platform.errors import Conflict, NotFound, ValidationFailed
from funnel.platform.pagination import Page, decode_cursor, encode_cursor
from funnel.platform.principal import Principal

PROFILE_ACTIVITIES = 20
PROFILE_SUGGESTIONS = 20
PROFILE_MERGES = 20
# Top-level metadata fields of an activity that name or reach a person (what sources put there: GitHub's
# sender/user objects, a form's name and e-mail, a visitor's IP and user agent); an erasure removes them.
PERSONAL_METADATA_KEYS = ("actor", "author", "avatar_url", "committer", "display_name", "email", "first_name",
                          "full_name", "handle", "html_url", "ip", "ip_address", "last_name", "login", "name",
                          "phone", "profile_url", "sender", "user", "user_agent", "username")
ERASED_EVIDENCE = [{"kind": "erased", "detail": "personal data erased", "weight": 0.0}]


def _user_id(principal: Principal) -> UUID | None:
    """The user a merge or decision is recorded under (an API key acts as its creator)."""
    try:
        return UUID(principal.user_id)
    except ValueError:
        return None


# ---------------------------------------------------------------- cursors

def _bad_cursor() -> ValidationFailed:
    return ValidationFailed.at(["query", "cursor"], "not a cursor this list gave; pass `next_cursor` as it came, "
                                                    "or leave it out for the first page")


def _time_position(cursor: str | None) -> tuple[datetime, UUID] | None:
    if not cursor:
        return None
    moment, last_id = decode_cursor(cursor, 2)
    try:
        at, position = datetime.fromisoformat(moment), UUID(last_id)
    except ValueError as exc:
        raise _bad_cursor() from exc
    if at.tzinfo is None:
        raise _bad_cursor()
    return at, position


def _time_page(rows: list[Row], limit: int, time_column: str, id_column: str) -> Page:
    return Page.from_rows(rows, limit, lambda r: encode_cursor([r[time_column].isoformat(), str(r[id_column])]))


def _like(q: str | None) -> str | None:
    """``q`` as an ILIKE pattern matching it anywhere (its own %, _ and \\ taken literally)."""
    if q is None or not q.strip():
        return None
    text = q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{text}%"


# ---------------------------------------------------------------- developers

SEARCH_WORDS = re.compile(r"[\s,、・()<>\"`/|]+")  # how community_0002_search_terms splits names into terms
MAX_SEARCH_WORDS = 8


def _search_alternatives(q: str) -> list[list[str]]:
    """The word lists a developer may match ``q`` by (each word a prefix of one of its terms): ``q``'s own words,
    and the romaji reading of a name written in kanji or kana (山田 finds the accounts identity read as yamada)."""
    text = unicodedata.normalize("NFKC", q)
    words = [w.lstrip("@") for w in SEARCH_WORDS.split(text) if w.lstrip("@")][:MAX_SEARCH_WORDS]  # @handle
    key = names.name_key(text)
    japanese = bool(names.KANA.search(text) or names.KANJI.search(text))
    readings = list(key.tokens[:MAX_SEARCH_WORDS]) if key and japanese else []
    return [w for w in (words, readings) if w]


def search(conn: Connection, *, q: str | None, tag: str | None, org_id: UUID | None, include_erased: bool,
           cursor: str | None, limit: int) -> Page:
    """``q``: developers with a term (name word, e-mail, handle, name reading) starting with each of its words,
    whose organization's name contains it, or holding it as an e-mail address (normalised as identity does)."""
    text = q.strip() if q else None
    email = matching.normalize_email(text) if text and "@" in text else None
    rows = store.search_developers(conn, alternatives=_search_alternatives(text) if text else [],
                                   org_like=_like(text), email=email.value if email else None, tag=tag,
                                   org_id=org_id, include_erased=include_erased, after=_time_position(cursor),
                                   limit=limit)
    return _time_page(rows, limit, "created_at", "developer_id")


def get_developer(conn: Connection, developer_id: UUID, *, for_update: bool = False) -> Row:
    row = store.developer(conn, developer_id, for_update=for_update)
    if row is None:
        raise NotFound("developer not found")
    return row


def _writable(conn: Connection, developer_id: UUID) -> Row:
    row = get_developer(conn, developer_id, for_update=True)
    if row["merged_into"] is not None:
        raise Conflict(f"this developer was merged into {row['merged_into']}: change that developer")
    if row["erased_at"] is not None:
        raise Conflict("this developer was erased")
    return row


def profile(conn: Connection, developer_id: UUID) -> dict[str, Any]:
    row = get_developer(conn, developer_id)
    counts = store.activity_counts(conn, developer_id)
    organization = store.organization(conn, row["org_id"]) if row["org_id"] else None
    return {
        "developer": row,
        "current_developer_id": store.surviving_developer(conn, developer_id) or developer_id,
        "organization": organization,
        "accounts": store.accounts_of(conn, developer_id),
        "identifiers": store.identifiers_of(conn, developer_id),
        "recent_activities": store.recent_activities(conn, developer_id, PROFILE_ACTIVITIES),
        "stats": {"total": sum(c["count"] for c in counts),
                  "last_activity_at": max((c["last_at"] for c in counts), default=None), "by_action": counts},
        "open_suggestions": suggestions_with_developers(
            conn, store.open_suggestions_of(conn, developer_id, PROFILE_SUGGESTIONS)),
        "merge_history": [merge_body(log) for log in store.merges_page(conn, developer_id=developer_id, after=None,
                                                                       limit=PROFILE_MERGES)[:PROFILE_MERGES]],
        **crossarea.profile_additions(conn, row, organization),  # e-mail clicks, the organization's outreach
    }


def identifiers(conn: Connection, developer_id: UUID) -> list[Row]:
    get_developer(conn, developer_id)
    return store.identifiers_of(conn, developer_id)


def _check_org(conn: Connection, org_id: UUID | None) -> None:
    if org_id is not None and store.organization(conn, org_id) is None:
        raise ValidationFailed.at(["body", "org_id"], "no such organization")


def _clean_developer_fields(fields: dict[str, Any]) -> dict[str, Any]:
    for name in ("consent_analytics", "tags"):
        if name in fields and fields[name] is None:
            raise ValidationFailed.at(["body", name], "cannot be null")
    if fields.get("tags") is not None:
        fields["tags"] = list(dict.fromkeys(fields["tags"]))
    return fields


def _email_conflict(exc: psycopg.errors.UniqueViolation) -> Conflict:
    return Conflict("another developer has this primary e-mail")


def create_developer(conn: Connection, principal: Principal, fields: dict[str, Any],
                     accounts: Sequence[AccountIn]) -> Row:
    """``fields``: display_name, primary_email, org_id, tags, consent_analytics (those given)."""
    fields = _clean_developer_fields(fields)
    _check_org(conn, fields.get("org_id"))
    for index, account in enumerate(accounts):
        identity.validate_account(account, ["body", "accounts", index])
    if not accounts:
        try:
            row = store.insert_developer(conn, {"display_name": None, "primary_email": None, "org_id": None,
                                                "tags": [], "consent_analytics": True, **fields})
        except psycopg.errors.UniqueViolation as exc:
            raise _email_conflict(exc) from exc
    else:
        resolved = identity.resolve_accounts(conn, accounts)
        found = list(dict.fromkeys(r.developer_id for r in resolved))
        new = store.created_in_this_transaction(conn, found)
        existing = [dev for dev in found if dev not in new]
        if existing:
            raise Conflict(f"the accounts belong to developer {existing[0]} (the same account or a certain "
                           f"identifier): change that developer instead")
        target = found[0]
        for other in found[1:]:
            identity.merge(conn, target, other, reason="created as one developer",
                           evidence=[{"kind": "manual", "detail": "created as one developer", "weight": 1.0}],
                           merged_by=_user_id(principal))
        row = get_developer(conn, target)
        if fields:
            try:
                row = store.update_developer(conn, target, fields)
            except psycopg.errors.UniqueViolation as exc:
                raise _email_conflict(exc) from exc
    audit.record(conn, principal, "developer.create", "developer", row["developer_id"],
                 {"accounts": len(accounts), "fields": sorted(fields)})
    return row


def update_developer(conn: Connection, principal: Principal, developer_id: UUID, changes: dict[str, Any]) -> Row:
    changes = _clean_developer_fields(changes)
    row = _writable(conn, developer_id)
    if not changes:
        return row
    if "org_id" in changes:
        _check_org(conn, changes["org_id"])
    try:
        row = store.update_developer(conn, developer_id, changes)
    except psycopg.errors.UniqueViolation as exc:
        raise _email_conflict(exc) from exc
    # field names only: the audit log must not keep what an erasure later removes
    audit.record(conn, principal, "developer.update", "developer", developer_id, {"fields": sorted(changes)})
    return row


def erase(conn: Connection, principal: Principal, developer_id: UUID) -> dict[str, Any]:
    store_identity.lock_identities(conn)  # no resolution links to the developer while it is erased
    row = get_developer(conn, developer_id, for_update=True)
    if row["merged_into"] is not None:
        raise Conflict(f"this developer was merged into {row['merged_into']}: erase that developer (it erases "
                       f"this one too)")
    if row["erased_at"] is not None:
        raise Conflict("this developer was already erased")
    same_person = store.merged_into_chain(conn, developer_id)
    outcome = {"developers_erased": len(same_person),
               "accounts_erased": store.erase_accounts(conn, same_person),
               "identifiers_deleted": store.delete_identifiers(conn, same_person),
               "activities_stripped": store.strip_activities(conn, same_person, PERSONAL_METADATA_KEYS)}
    store.redact_merge_records(conn, same_person, ERASED_EVIDENCE)
    store.erase_developers(conn, same_person)
    audit.record(conn, principal, "developer.erase", "developer", developer_id, outcome)
    return {**outcome, "developer": get_developer(conn, developer_id)}


# ---------------------------------------------------------------- organizations

def _clean_organization(fields: dict[str, Any]) -> dict[str, Any]:
    if "name" in fields and fields["name"] is None:
        raise ValidationFailed.at(["body", "name"], "cannot be null")
    if "attributes" in fields and fields["attributes"] is None:
        fields["attributes"] = {}
    if fields.get("domain_primary") is not None:
        domain = matching.normalize_domain(fields["domain_primary"])
        if domain is None:
            raise ValidationFailed.at(["body", "domain_primary"], "not a domain (example.com)")
        fields["domain_primary"] = domain
    return fields


def list_organizations(conn: Connection, *, q: str | None, cursor: str | None, limit: int) -> Page:
    rows = store.organizations_page(conn, like=_like(q), after=_time_position(cursor), limit=limit)
    return _time_page(rows, limit, "created_at", "org_id")


def get_organization(conn: Connection, org_id: UUID) -> Row:
    row = store.organization(conn, org_id)
    if row is None:
        raise NotFound("organization not found")
    return row


def create_organization(conn: Connection, principal: Principal, fields: dict[str, Any]) -> Row:
    fields = _clean_organization({"domain_primary": None, "attributes": {}, **fields})
    row = store.insert_organization(conn, fields)
    if row is None:
        raise Conflict("an organization of this name exists")
    audit.record(conn, principal, "organization.create", "organization", row["org_id"], {"name": row["name"]})
    return row


def update_organization(conn: Connection, principal: Principal, org_id: UUID, changes: dict[str, Any]) -> Row:
    changes = _clean_organization(changes)
    if not changes:
        return get_organization(conn, org_id)
    try:
        row = store.update_organization(conn, org_id, changes)
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict("an organization of this name exists") from exc
    if row is None:
        raise NotFound("organization not found")
    audit.record(conn, principal, "organization.update", "organization", org_id, {"fields": sorted(changes)})
    return row


# ---------------------------------------------------------------- accounts

def list_accounts(conn: Connection, *, provider: str | None, developer_id: UUID | None, q: str | None,
                  cursor: str | None, limit: int) -> Page:
    handle = unicodedata.normalize("NFKC", q).strip().lstrip("@") if q and q.strip() else None
    rows = store.accounts_page(conn, provider=provider.strip().casefold() if provider else None,
                               developer_id=developer_id, handle_prefix=handle or None, after=_time_position(cursor),
                               limit=limit)
    return _time_page(rows, limit, "created_at", "account_id")


def get_account(conn: Connection, account_id: UUID) -> Row:
    row = store.account(conn, account_id)
    if row is None:
        raise NotFound("account not found")
    return row


# ---------------------------------------------------------------- suggestions

def suggestions_with_developers(conn: Connection, rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Suggestion rows with both developers' summaries (one query for the page)."""
    ids = sorted({r[c] for r in rows for c in ("developer_id", "other_developer_id")}, key=str)
    summaries = {s["developer_id"]: s for s in store.developer_summaries(conn, ids)} if ids else {}
    out = []
    for r in rows:
        body = {k: v for k, v in r.items() if k not in ("developer_id", "other_developer_id")}
        out.append({**body, "developer": summaries[r["developer_id"]],
                    "other_developer": summaries[r["other_developer_id"]]})
    return out


def _confidence_position(cursor: str | None) -> tuple[Decimal, UUID] | None:
    if not cursor:
        return None
    confidence, last_id = decode_cursor(cursor, 2)
    try:
        value, position = Decimal(confidence), UUID(last_id)
    except (InvalidOperation, ValueError) as exc:
        raise _bad_cursor() from exc
    if not value.is_finite():
        raise _bad_cursor()
    return value, position


def list_suggestions(conn: Connection, *, min_confidence: float, developer_id: UUID | None, cursor: str | None,
                     limit: int) -> tuple[list[dict[str, Any]], str | None]:
    rows = store.suggestions_page(conn, min_confidence=min_confidence, developer_id=developer_id,
                                  after=_confidence_position(cursor), limit=limit)
    page = Page.from_rows(rows, limit, lambda r: encode_cursor([str(r["confidence"]), str(r["suggestion_id"])]))
    return suggestions_with_developers(conn, page.items), page.next_cursor


def _live_pair(conn: Connection, pair: Sequence[tuple[UUID, list[str | int]]]) -> None:
    """Both developers exist here (else a 422 at their field), are live and not erased (else a 409)."""
    rows = {r["developer_id"]: r for r in store.developers(conn, [dev for dev, _ in pair], for_update=True)}
    for dev, loc in pair:
        row = rows.get(dev)
        if row is None:
            raise ValidationFailed.at(loc, "no such developer")
        if row["merged_into"] is not None:
            raise Conflict(f"developer {dev} was merged into {row['merged_into']}")
        if row["erased_at"] is not None:
            raise Conflict(f"developer {dev} was erased: it cannot be merged")


def accept_suggestion(conn: Connection, principal: Principal, suggestion_id: UUID) -> Row:
    """identity.accept, refused when either developer was merged or erased since the suggestion."""
    store_identity.lock_identities(conn)
    row = store.suggestion(conn, suggestion_id)
    if row is None:
        raise NotFound("suggestion not found")
    if row["status"] == "open":
        rows = store.developers(conn, [row["developer_id"], row["other_developer_id"]], for_update=True)
        if any(r["erased_at"] is not None or r["merged_into"] is not None for r in rows):
            raise Conflict("one of the developers was merged or erased since the suggestion")
    log = identity.accept(conn, suggestion_id, by=_user_id(principal))
    audit.record(conn, principal, "developer.merge", "developer", log["into_developer_id"],
                 {"merge_id": str(log["merge_id"]), "from_developer_id": str(log["from_developer_id"]),
                  "suggestion_id": str(suggestion_id)})
    return log


def reject_suggestion(conn: Connection, principal: Principal, suggestion_id: UUID) -> dict[str, Any]:
    row = identity.reject(conn, suggestion_id, by=_user_id(principal))
    audit.record(conn, principal, "merge_suggestion.reject", "merge_suggestion", suggestion_id, {})
    return suggestions_with_developers(conn, [row])[0]


# ---------------------------------------------------------------- merges

def merge_body(log: Row) -> dict[str, Any]:
    moved = log["moved"] or {}
    return {**log, "moved": {"accounts": moved.get("accounts", []), "identifiers": moved.get("identifiers", []),
                             "activity_count": len(moved.get("activities", []))}}


def merge(conn: Connection, principal: Principal, into: UUID, from_: UUID, reason: str | None) -> Row:
    if into == from_:
        raise ValidationFailed.at(["body", "from_developer_id"], "a developer cannot be merged into itself")
    store_identity.lock_identities(conn)
    _live_pair(conn, [(into, ["body", "into_developer_id"]), (from_, ["body", "from_developer_id"])])
    log = identity.merge(conn, into, from_, reason=reason,
                         evidence=[{"kind": "manual", "detail": reason or "merged by a person", "weight": 1.0}],
                         merged_by=_user_id(principal))
    audit.record(conn, principal, "developer.merge", "developer", into,
                 {"merge_id": str(log["merge_id"]), "from_developer_id": str(from_)})
    return log


def unmerge(conn: Connection, principal: Principal, merge_id: UUID) -> Row:
    store_identity.lock_identities(conn)
    log = store.merge_log(conn, merge_id)
    if log is not None and log["action"] == "merge":
        pair = store.developers(conn, [log["into_developer_id"], log["from_developer_id"]])
        if any(r["erased_at"] is not None for r in pair):
            raise Conflict("a developer of this merge was erased: there is nothing personal left to separate")
    undo = identity.unmerge(conn, merge_id, by=_user_id(principal))
    audit.record(conn, principal, "developer.unmerge", "developer", undo["into_developer_id"],
                 {"merge_id": str(merge_id), "from_developer_id": str(undo["from_developer_id"])})
    return undo


def list_merges(conn: Connection, *, developer_id: UUID | None, cursor: str | None, limit: int) -> Page:
    rows = store.merges_page(conn, developer_id=developer_id, after=_time_position(cursor), limit=limit)
    page = _time_page(rows, limit, "merged_at", "merge_id")
    return Page([merge_body(r) for r in page.items], page.next_cursor)
