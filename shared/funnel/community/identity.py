"""Identity resolution: every account that reaches the product (API, CSV, plugin webhooks and pulls, the
``funnel community resolve`` command) goes through ``resolve_accounts``.

An account is linked to an existing developer only on certain evidence (an identifier both carry, see
``funnel.community.matching``); otherwise it becomes a developer of its own, and what only suggests the same person
becomes a merge suggestion with its confidence and evidence. When one account proves that two developers are one
person (a GitHub commit e-mail carrying the id of a GitHub account that already has a developer), the two are merged
by the system, logged like any merge. A merge moves accounts, identifiers and activities and keeps the merged
developer (``merged_into``), so an unmerge restores exactly what the merge moved.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from funnel.community import matching, names
from funnel.community import store_identity as store
from funnel.community.matching import Profile
from funnel.db import Connection, Row
from funnel.platform.errors import Conflict, NotFound, ValidationFailed

SUGGESTION_BATCH = 5000  # developers whose candidates are looked up in one statement (a pass over the keys)
COMMON_KEY = 25  # developers sharing one blocking key beyond which the key is too common to suggest anything


@dataclass
class AccountIn:
    """An account as a source reports it (the fields of an ingested event's actor, a CSV row, a JSONL line)."""
    provider: str
    external_user_id: str
    handle: str | None = None
    email: str | None = None
    display_name: str | None = None
    org: str | None = None
    profile_url: str | None = None
    avatar_url: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    seen_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider.strip().casefold(), self.external_user_id.strip())


@dataclass(frozen=True)
class Resolved:
    account_id: UUID
    developer_id: UUID
    created: bool


def profile_of(account: AccountIn | Row) -> Profile:
    if isinstance(account, AccountIn):
        return matching.profile(account.provider, account.external_user_id, handle=account.handle,
                                email=account.email, display_name=account.display_name, org=account.org,
                                attributes=account.attributes)
    return matching.stored_profile(account["provider"], account["external_user_id"], account["handle"],
                                   account["email"], account["display_name"], account["attributes"] or {})


class _Clusters:
    """Union-find over the batch's accounts, identifier keys and existing developers. A union that would put two
    accounts of one provider with different ids (two GitHub accounts, two X accounts) into one person is refused:
    whatever they share, the provider says they are two accounts (``matching.RECORD_PROVIDERS`` excepted)."""

    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}
        self.accounts: dict[Any, dict[str, str]] = {}  # root -> provider -> external id

    def find(self, x: Any) -> Any:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def holds(self, node: Any, provider: str, external_user_id: str) -> None:
        root = self.find(node)
        self.accounts.setdefault(root, {}).setdefault(provider, external_user_id)

    def union(self, a: Any, b: Any, *, force: bool = False) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        held_a, held_b = self.accounts.get(ra, {}), self.accounts.get(rb, {})
        if not force and any(held_a[p] != ext for p, ext in held_b.items() if p in held_a):
            return False
        self.parent[rb] = ra
        if held_b:
            self.accounts[ra] = {**held_b, **held_a}
            del self.accounts[rb]
        return True


def validate_account(account: AccountIn, loc: list[str | int]) -> None:
    if not account.provider or not matching.PROVIDER.match(account.key[0]):
        raise ValidationFailed.at([*loc, "provider"], "a provider is 1-50 characters of a-z, 0-9, '_', '.', '-'")
    if not account.key[1] or len(account.key[1]) > 300:
        raise ValidationFailed.at([*loc, "external_user_id"], "an external user id is 1-300 characters")


def resolve_accounts(conn: Connection, accounts: Sequence[AccountIn], *, suggest: bool = True) -> list[Resolved]:
    """Link or create each account's developer (in the order given; an account listed twice resolves once)."""
    if not accounts:
        return []
    store.lock_identities(conn)
    unique: dict[tuple[str, str], AccountIn] = {}
    for account in accounts:
        unique.setdefault(account.key, account)
    keys = list(unique)
    existing = {(r["provider"], r["external_user_id"]): r
                for r in store.accounts_by_external_id(conn, [k[0] for k in keys], [k[1] for k in keys])}
    profiles = {k: profile_of(a) for k, a in unique.items()}
    wanted = sorted({ident for p in profiles.values() for ident in p.identifiers})
    owners: dict[tuple[str, str], UUID] = {
        (r["kind"], r["value_normalized"]): r["developer_id"]
        for r in store.identifier_owners(conn, [w[0] for w in wanted], [w[1] for w in wanted])} if wanted else {}
    known = sorted({*owners.values(), *(r["developer_id"] for r in existing.values() if r["developer_id"])}, key=str)
    # the accounts already behind developers this batch may join (their providers and names are evidence too)
    known_accounts: dict[UUID, list[Profile]] = defaultdict(list)
    for row in store.accounts_of_developers(conn, known) if known else []:
        if (row["provider"], row["external_user_id"]) not in unique:
            known_accounts[row["developer_id"]].append(profile_of(row))

    clusters = _Clusters()
    for k, p in profiles.items():
        clusters.find(("account", k))
        if not p.record_provider:
            clusters.holds(("account", k), *k)
    for developer_id, held in known_accounts.items():
        for p in held:
            if not p.record_provider:
                clusters.holds(("developer", developer_id), p.provider, p.external_user_id)
    for k, row in existing.items():
        if row["developer_id"]:
            clusters.union(("developer", row["developer_id"]), ("account", k), force=True)
    carriers: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for k, p in profiles.items():
        for ident in p.identifiers:
            carriers[ident].append(k)
    shared = {ident for ident, ks in carriers.items()
              if _shared_by_different_people([profiles[k] for k in ks]
                                             + (known_accounts.get(owners[ident], []) if ident in owners else []))}
    for ident, ks in carriers.items():
        if ident in shared:
            continue
        if ident in owners:
            clusters.union(("developer", owners[ident]), ("identifier", ident), force=True)
        for k in ks:
            clusters.union(("identifier", ident), ("account", k))
    members: dict[Any, list[Any]] = defaultdict(list)
    for node in list(clusters.parent):
        members[clusters.find(node)].append(node)

    created_at = {r["developer_id"]: (r["created_at"], str(r["developer_id"]))
                  for r in store.developers_by_id(conn, known)} if known else {}
    developer_of: dict[tuple[str, str], UUID] = {}
    developer_of_identifier: dict[tuple[str, str], UUID] = {}
    new_developers: list[dict[str, Any]] = []
    proven_merges: list[tuple[UUID, UUID, list[dict[str, Any]]]] = []
    for nodes in members.values():
        account_keys = [n[1] for n in nodes if n[0] == "account"]
        if not account_keys:
            continue
        developers = sorted({n[1] for n in nodes if n[0] == "developer"}, key=lambda d: created_at.get(d, (d, "")))
        if developers:
            target = developers[0]
            for other in developers[1:]:
                both = [f"{kind}: {value}" for n in nodes if n[0] == "identifier"
                        for kind, value in [n[1]] if owners.get(n[1]) in (other, target)]
                proven_merges.append((target, other, [{"kind": "shared_identifier", "weight": 1.0,
                                                       "detail": "; ".join(both) or "shared identifier"}]))
        else:
            target = uuid.uuid4()
            first = unique[account_keys[0]]
            names = [unique[k].display_name for k in account_keys if profiles[k].name]
            emails = [matching.clean_address(address) for k in account_keys
                      if (address := unique[k].email) and _personal_address(profiles[k])]
            new_developers.append({"developer_id": target, "display_name": (names or [first.display_name
                                                                                        or first.handle])[0],
                                   "primary_email": emails[0] if emails else None})
        for k in account_keys:
            developer_of[k] = target
        for n in nodes:
            if n[0] == "identifier":
                developer_of_identifier[n[1]] = target

    if new_developers:
        taken = store.taken_primary_emails(conn, [d["primary_email"] for d in new_developers if d["primary_email"]])
        seen: set[str] = set()
        for d in new_developers:
            email = (d["primary_email"] or "").casefold()
            if email and (email in taken or email in seen):
                d["primary_email"] = None  # developers_tenant_email_unique: the address belongs to another already
            seen.add(email)
        store.insert_developers(conn, new_developers)
    for into, from_, evidence in proven_merges:
        _merge(conn, into, from_, reason="certain: an account carries identifiers of both", evidence=evidence,
               merged_by=None, refresh=False)

    new_rows: list[dict[str, Any]] = []
    updated_rows: list[dict[str, Any]] = []
    results: dict[tuple[str, str], Resolved] = {}
    for k, account in unique.items():
        p = profiles[k]
        row = _account_fields(account, p)
        if k in existing:
            account_id = existing[k]["account_id"]
            updated_rows.append({**row, "account_id": account_id, "developer_id": developer_of[k]})
            results[k] = Resolved(account_id, developer_of[k], created=False)
        else:
            account_id = uuid.uuid4()
            new_rows.append({**row, "account_id": account_id, "developer_id": developer_of[k],
                             "provider": k[0], "external_user_id": k[1], "dedup_key": None})
            results[k] = Resolved(account_id, developer_of[k], created=True)
    if updated_rows:
        store.update_accounts(conn, updated_rows)
    if new_rows:
        store.insert_accounts(conn, new_rows)
    identifiers: dict[tuple[str, str], dict[str, Any]] = {}
    for k, p in profiles.items():
        for ident in p.identifiers:
            if ident in owners or ident in shared or ident in identifiers:
                continue
            if developer_of_identifier.get(ident) == developer_of[k]:
                identifiers[ident] = {"developer_id": developer_of[k], "account_id": results[k].account_id,
                                      "kind": ident[0], "value_normalized": ident[1]}
    if identifiers:
        store.insert_identifiers(conn, list(identifiers.values()))
    if suggest:
        touched = {r.developer_id for r in results.values()} | {into for into, _, _ in proven_merges}
        refresh_suggestions(conn, sorted(touched, key=str))
    return [results[a.key] for a in accounts]


def _shared_by_different_people(holders: list[Profile]) -> bool:
    """An identifier that accounts with unrelated full names carry is a shared one (a team's mailbox, an office
    phone): it proves nothing about a person, whatever its spelling."""
    named = [p.name for p in holders if p.name is not None and p.name.full]
    return any(names.names_disjoint(a, b) for i, a in enumerate(named) for b in named[i + 1:])


def _personal_address(p: Profile) -> bool:
    """An address fit to be a developer's primary e-mail (a person's own, not GitHub's commit address)."""
    return bool(p.email and p.email.personal and not p.email.github_user_id and not p.machine)


def _account_fields(account: AccountIn, p: Profile) -> dict[str, Any]:
    attributes = dict(account.attributes or {})
    if account.org:
        attributes["org"] = account.org
    return {"handle": account.handle, "email": account.email.strip() if account.email else None,
            "display_name": account.display_name, "profile_url": account.profile_url,
            "avatar_url": account.avatar_url, "attributes": attributes, "match_keys": matching.match_keys(p),
            "first_seen": account.seen_at, "last_seen": account.seen_at}


def _oldest(conn: Connection, developer_ids: Sequence[UUID]) -> UUID:
    rows = store.developers_by_id(conn, developer_ids)
    return min(rows, key=lambda r: (r["created_at"], str(r["developer_id"])))["developer_id"]


# ---------------------------------------------------------------- suggestions

def refresh_suggestions(conn: Connection, developer_ids: Sequence[UUID]) -> None:
    """Recompute the open suggestions between ``developer_ids`` and every developer sharing a blocking key."""
    for start in range(0, len(developer_ids), SUGGESTION_BATCH):
        _refresh_chunk(conn, developer_ids[start:start + SUGGESTION_BATCH])


def _refresh_chunk(conn: Connection, developer_ids: Sequence[UUID]) -> None:
    own = store.accounts_of_developers(conn, developer_ids)
    keys = sorted({key for row in own for key in matching.blocking_keys(row["match_keys"])})
    found: list[tuple[UUID, UUID, float, list[dict[str, Any]]]] = []
    if keys:
        found = _suggestions(conn, developer_ids, own, keys)
    store.drop_open_suggestions(conn, list(developer_ids))
    if found:
        store.upsert_suggestions(conn, found)


def _suggestions(conn: Connection, developer_ids: Sequence[UUID], own: list[Row],
                 keys: list[str]) -> list[tuple[UUID, UUID, float, list[dict[str, Any]]]]:
    """The suggestions between ``developer_ids`` and the developers whose accounts share a blocking key. A key
    that more than ``COMMON_KEY`` developers carry (a common name, the handle everyone spells from it) tells none
    of them apart: it finds no candidates (the accounts may still meet through a rarer key)."""
    mine = set(developer_ids)
    pairs: set[tuple[UUID, UUID]] = set()
    for row in store.developers_by_key(conn, keys, COMMON_KEY):
        holders = row["developers"]
        for dev in holders:
            if dev in mine:
                pairs.update((dev, other) if dev.int < other.int else (other, dev) for other in holders if other != dev)
    if not pairs:
        return []
    # in the order of the ids' text (which is their numbers' order), compared as numbers: cheaper than str()
    ordered = sorted(pairs, key=lambda p: (p[0].int, p[1].int))
    others = sorted({d for pair in pairs for d in pair if d not in mine}, key=lambda d: d.int)
    rows = own + (store.accounts_of_developers(conn, others) if others else [])
    by_developer: dict[UUID, dict[UUID, Row]] = defaultdict(dict)
    for r in rows:
        by_developer[r["developer_id"]].setdefault(r["account_id"], r)
    profiles = {dev: [profile_of(r) for r in accounts.values()] for dev, accounts in by_developer.items()}
    rejected = {(r["developer_id"], r["other_developer_id"]) for r in store.rejected_among(conn, ordered)}
    found: list[tuple[UUID, UUID, float, list[dict[str, Any]]]] = []
    for a, b in ordered:
        if (a, b) in rejected:
            continue
        match = matching.best_match(profiles[a], profiles[b])
        if match:
            score, evidence = match
            found.append((a, b, score, [e.as_json() for e in evidence]))
    return found


# ---------------------------------------------------------------- merge and unmerge

def _live(conn: Connection, developer_id: UUID) -> Row:
    rows = store.developers_by_id(conn, [developer_id], for_update=True)
    if not rows or rows[0]["merged_into"] is not None:
        raise NotFound("developer not found")
    return rows[0]


def merge(conn: Connection, into: UUID, from_: UUID, *, reason: str | None, evidence: list[dict[str, Any]],
          merged_by: UUID | None) -> Row:
    """Merge developer ``from_`` into ``into`` (a person's decision); returns the merge log."""
    if into == from_:
        raise ValidationFailed.at(["body", "from_developer_id"], "a developer cannot be merged into itself")
    store.lock_identities(conn)
    return _merge(conn, into, from_, reason=reason, evidence=evidence, merged_by=merged_by)


def _merge(conn: Connection, into: UUID, from_: UUID, *, reason: str | None, evidence: list[dict[str, Any]],
           merged_by: UUID | None, refresh: bool = True) -> Row:
    target, source = _live(conn, into), _live(conn, from_)
    accounts = [r["account_id"] for r in store.accounts_of_developers(conn, [from_])]
    identifiers = [r["identifier_id"] for r in store.identifiers_of_developers(conn, [from_])]
    activities = store.activity_ids_of(conn, from_)
    moved = {"accounts": [str(a) for a in accounts], "identifiers": [str(i) for i in identifiers],
             "activities": [str(a) for a in activities],
             "into_before": {"display_name": target["display_name"],
                             "org_id": str(target["org_id"]) if target["org_id"] else None}}
    store.move_accounts(conn, accounts, into)
    store.move_identifiers(conn, identifiers, into)
    store.move_all_activities(conn, from_, into)
    store.fill_developer(conn, into, source["display_name"], source["org_id"])
    store.set_merged_into(conn, from_, into)
    store.carry_rejections(conn, from_, into)
    # the pair's own suggestion is decided first: dropping the open ones would delete it
    suggestion = store.suggestion_for_pair(conn, into, from_)
    if suggestion and suggestion["status"] == "open":
        store.decide_suggestion(conn, suggestion["suggestion_id"], "accepted", merged_by)
    store.drop_open_suggestions(conn, [from_, into])
    store.delete_developer_stats(conn, [into, from_])
    log = store.insert_merge_log(conn, action="merge", into=into, from_=from_, reason=reason, evidence=evidence,
                                 moved=moved, merged_by=merged_by)
    if refresh:
        refresh_suggestions(conn, [into])
    return log


def unmerge(conn: Connection, merge_id: UUID, *, by: UUID | None, reason: str | None = None) -> Row:
    """Undo a merge: what it moved goes back, the merged developer is live again; returns the unmerge log."""
    store.lock_identities(conn)
    log = store.merge_log(conn, merge_id, for_update=True)
    if log is None or log["action"] != "merge":
        raise NotFound("merge not found")
    if log["undone_at"] is not None:
        raise Conflict("this merge was already undone")
    into, from_ = log["into_developer_id"], log["from_developer_id"]
    if store.later_merges_into(conn, into, log["merged_at"]):
        raise Conflict("the developer was merged again after this merge: undo the later merge first")
    moved = log["moved"]
    accounts = [UUID(a) for a in moved.get("accounts", [])]
    identifiers = [UUID(i) for i in moved.get("identifiers", [])]
    activities = [UUID(a) for a in moved.get("activities", [])]
    store.move_accounts(conn, accounts, from_)
    store.move_identifiers(conn, identifiers, from_)
    store.move_activities(conn, activities, from_)
    before = moved.get("into_before") or {}
    store.set_developer_fields(conn, into, before.get("display_name"),
                               UUID(before["org_id"]) if before.get("org_id") else None)
    store.set_merged_into(conn, from_, None)
    store.mark_merge_undone(conn, merge_id)
    store.delete_developer_stats(conn, [into, from_])
    # the people who undid it said these are two people: never suggest them again
    store.reject_pair(conn, into, from_, by, [{"kind": "unmerged", "weight": 0.0,
                                               "detail": f"merge {merge_id} was undone"}])
    unmerge_log = store.insert_merge_log(conn, action="unmerge", into=into, from_=from_, reason=reason,
                                         evidence=[], moved=moved, merged_by=by, undoes=merge_id)
    refresh_suggestions(conn, [into, from_])
    return unmerge_log


def reject(conn: Connection, suggestion_id: UUID, *, by: UUID | None) -> Row:
    """"Not the same person": remembered, never suggested again (also after either is merged into another)."""
    row = store.suggestion(conn, suggestion_id, for_update=True)
    if row is None:
        raise NotFound("suggestion not found")
    if row["status"] == "accepted":
        raise Conflict("this suggestion was accepted: unmerge the merge instead")
    return store.decide_suggestion(conn, suggestion_id, "rejected", by)


def accept(conn: Connection, suggestion_id: UUID, *, by: UUID | None) -> Row:
    """Merge the two developers of an open suggestion (the older one survives); returns the merge log."""
    store.lock_identities(conn)
    row = store.suggestion(conn, suggestion_id, for_update=True)
    if row is None:
        raise NotFound("suggestion not found")
    if row["status"] != "open":
        raise Conflict(f"this suggestion is {row['status']}")
    a, b = row["developer_id"], row["other_developer_id"]
    into = _oldest(conn, [a, b])
    from_ = b if into == a else a
    return _merge(conn, into, from_, reason=f"suggestion accepted ({row['confidence']})", evidence=row["evidence"],
                  merged_by=by)


def developers_with_accounts(conn: Connection) -> dict[UUID, list[tuple[str, str]]]:
    """Every live developer with its accounts' (provider, external id) (the resolve command's output)."""
    out: dict[UUID, list[tuple[str, str]]] = {dev: [] for dev in store.live_developer_ids(conn)}
    for row in store.all_account_developers(conn):
        if row["developer_id"] in out:
            out[row["developer_id"]].append((row["provider"], row["external_user_id"]))
    return out


def open_suggestions(conn: Connection) -> list[Row]:
    return store.all_open_suggestions(conn)


def resolve_in_chunks(conn: Connection, accounts: Iterable[AccountIn], chunk: int = 5000) -> int:
    """Resolve a long stream of accounts in batches of ``chunk`` (suggestions refreshed per batch)."""
    batch: list[AccountIn] = []
    count = 0
    for account in accounts:
        batch.append(account)
        if len(batch) >= chunk:
            resolve_accounts(conn, batch)
            count += len(batch)
            batch = []
    if batch:
        resolve_accounts(conn, batch)
        count += len(batch)
    return count
